"""Entry points the CLI calls: `run_in_tui` for `aether run` in a terminal, `run_session` for `aether tui`.

Both return the process exit code and, once the full-screen app has closed, print one line saying how it ended
(the screen is gone by then, so the outcome must stay visible in the terminal).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from aetherflow.tui.contracts import PipelineLike, RunJob, ScreenExit

if TYPE_CHECKING:
    from textual.app import App

    from aetherflow.services import Services


def _report(outcome: ScreenExit | None) -> None:
    if outcome is None or not outcome.message:
        return
    ok = outcome.outcome in ("applied", "no_changes", "kept", "discarded")
    err = Console(stderr=True, highlight=False)
    err.print(f"[{'green' if ok else 'bold red'}]{escape(outcome.message)}[/]")
    if outcome.hint:
        err.print(f"  [yellow]→[/] {escape(outcome.hint)}")


async def _close_gateway(services: Services) -> None:
    # Only when a run created it: `gateway` is a cached property, present in __dict__ once built.
    gateway = services.__dict__.get("gateway")
    if gateway is not None:
        await gateway.aclose()


def _exit_code(app: App[int]) -> int:
    """The app's own exit code (0-130 from the screens), or Textual's (1 after a crash) when it has none."""
    value = app.return_value
    return value if isinstance(value, int) else (app.return_code or 0)


async def run_in_tui(
    services: Services,
    request: str,
    images: list[Path] | None = None,
    resume_id: str | None = None,
    *,
    commit: bool = False,
    pipeline: PipelineLike | None = None,
) -> int:
    """Run `request` with the run screen, review its change set, apply what the user accepts; return the exit code.

    The spending limit is the services' (build them with the `--budget` flag layer); `commit` commits the applied
    files as `aether run --commit` does. Exit codes: 0 applied, kept,
    discarded or nothing to change; 130 cancelled by the user; otherwise the error's own code (1 for a failed or
    interrupted run).
    """
    from aetherflow.tui.app import RunApp
    from aetherflow.tui.wiring import make_pipeline

    job = RunJob(request=request, images=list(images or []), resume_id=resume_id, commit=commit)
    app = RunApp(job, pipeline or make_pipeline(services), services.bus, repo_root=services.repo_root)
    try:
        await app.run_async()
    finally:
        await _close_gateway(services)
    _report(app.outcome)
    return _exit_code(app)


def run_request(services: Services, request: str, images: list[Path] | None = None,
                resume_id: str | None = None, *, commit: bool = False) -> int:
    """`run_in_tui` for synchronous callers (a Typer command)."""
    return asyncio.run(run_in_tui(services, request, images, resume_id, commit=commit))


async def run_session_async(services: Services, *, pipeline: PipelineLike | None = None) -> int:
    """The interactive session (`aether tui`); returns the exit code."""
    from aetherflow.tui.app import SessionApp
    from aetherflow.tui.wiring import session_sources

    services.require_repo()
    app = SessionApp(session_sources(services, pipeline))
    try:
        await app.run_async()
    finally:
        await _close_gateway(services)
        if app.sources.search is not None:
            app.sources.search.close()  # let `aether index` open the store again
    return _exit_code(app)


def run_session(services: Services) -> int:
    """`run_session_async` for synchronous callers."""
    return asyncio.run(run_session_async(services))
