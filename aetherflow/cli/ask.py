"""`aether ask`: one streamed answer through the gateway, with repository context when an index exists."""

from __future__ import annotations

import asyncio
import json
import sys

import typer
from rich.console import Console

from aetherflow.cli import app
from aetherflow.errors import ProviderError


@app.command()
def ask(
    question: str = typer.Argument(..., help="The question, in quotes."),
    model: str | None = typer.Option(None, "--model", "-m", help="Model alias (see `aether models`)."),
    agent: str = typer.Option("analyst", "--agent", help="Agent whose model and fallbacks answer."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of streaming text."),
    context_k: int = typer.Option(8, "--context", "-k", min=0, help="Retrieved chunks to include (0: none)."),
) -> None:
    """Ask a question about the repository (or anything) and stream the answer with its cost."""
    from aetherflow.services import build_services

    services = build_services()
    outcome = asyncio.run(_ask(services, question, model, agent, as_json, context_k))
    if as_json:
        typer.echo(json.dumps(outcome, indent=2))


async def _ask(services, question: str, model: str | None, agent: str, as_json: bool, k: int) -> dict:
    from aetherflow.cli.ask_context import build_messages
    from aetherflow.llm.types import CallRequest, CallResult, TextDelta

    messages, sources = build_messages(services, question, agent, k)
    request = CallRequest(messages=messages, alias=model, agent=None if model else agent, stream=not as_json)
    gateway = services.gateway
    result: CallResult | None = None
    try:
        async for item in gateway.stream(request):
            if isinstance(item, TextDelta) and not as_json:
                sys.stdout.write(item.text)
                sys.stdout.flush()
            elif isinstance(item, CallResult):
                result = item
    finally:
        await gateway.aclose()
    if result is None:
        raise ProviderError("The model stream ended without a result.", "Run the command again; if it persists, run `aether doctor --ping`.")
    if not as_json:
        sys.stdout.write("\n")
        _print_cost_line(result, sources)
    return _as_dict(result, sources)


def _print_cost_line(result, sources: list[str]) -> None:
    u = result.usage
    parts = [
        f"{result.alias} ({result.model_id})",
        f"{u.prompt_tokens:,} in / {u.completion_tokens:,} out",
        f"${result.cost_usd:.4f}",
        f"{result.latency_s:.1f} s",
    ]
    if result.cache_hit:
        parts.append("cache hit")
    if result.fallbacks:
        parts.append("fell back from " + ", ".join(result.fallbacks))
    if result.redactions:
        parts.append(f"{result.redactions} secret(s) redacted")
    if sources:
        parts.append(f"context: {len(sources)} chunk(s)")
    Console(stderr=True).print("[dim]— " + " · ".join(parts) + "[/]", highlight=False)


def _as_dict(result, sources: list[str]) -> dict:
    return {
        "text": result.text,
        "alias": result.alias,
        "model": result.model_id,
        "usage": result.usage.model_dump(),
        "cost_usd": result.cost_usd,
        "latency_s": result.latency_s,
        "ttft_s": result.ttft_s,
        "cache_hit": result.cache_hit,
        "fallbacks": result.fallbacks,
        "redactions": result.redactions,
        "context": sources,
    }
