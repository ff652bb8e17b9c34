"""`aether tui`: the interactive session (requests, live runs, review, history, index search, stats)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from aetherflow.cli import app
from aetherflow.errors import UsageError


@app.command()
def tui(
    budget: Annotated[
        float | None, typer.Option("--budget", help="Spending limit for each run of the session, in USD.")
    ] = None,
) -> None:
    """Open the interactive session: type a request, watch it run, review and apply its diff; browse past runs,
    search the index and see spend and savings."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError(
            "`aether tui` needs an interactive terminal, and this one is not (input or output is redirected).",
            'Run it in a terminal, or use `aether run "request" --no-tui` for plain output.',
        )
    if budget is not None and budget <= 0:
        raise UsageError(f"--budget must be more than 0 USD (got {budget:g}).", "Example: `--budget 0.50`.")
    from aetherflow.services import build_services
    from aetherflow.tui.entry import run_session

    services = build_services(flags={"budget": {"per_run_usd": budget}} if budget is not None else None)
    raise typer.Exit(run_session(services))
