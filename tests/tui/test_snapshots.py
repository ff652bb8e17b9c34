"""Snapshots of the main screens at 80x24 (update with `pytest tests/tui --snapshot-update`, then look at them).

Times are fixed (events carry fixed timestamps, the screens get a fixed clock, TZ is UTC) so the images only
change when the screens do.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from tui_support import UTIL
from textual.pilot import Pilot
from tui_support import T0, FakeSearch, ScriptedPipeline, fill_ledger, run_script, sample_hits

from aetherflow.config.models import Price
from aetherflow.events import EventBus
from aetherflow.ledger.store import Ledger
from aetherflow.tui.app import RunApp, SessionApp
from aetherflow.tui.contracts import RunJob
from aetherflow.tui.screens.review import ReviewScreen
from aetherflow.tui.screens.session import RunKit, SessionSources

SIZE = (80, 24)
EDITS: dict[str, str | None] = {
    "app/util.py": UTIL.replace("line 3\n", "line three\n").replace("line 37\n", "line thirty-seven\n"),
    "app/jwt.py": "def encode(claims):\n    return sign(claims)\n",
}


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dates in the history and stats are local dates: pin the zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


def run_app(repo: Path) -> tuple[RunApp, ScriptedPipeline]:
    bus = EventBus()
    pipeline = ScriptedPipeline(bus, repo, dict(EDITS), run_script("run-tui-1", "Add JWT auth to the login flow"))
    app = RunApp(RunJob(request="Add JWT auth to the login flow"), pipeline, bus, repo_root=repo,
                 clock=lambda: T0 + 12, theme="textual-dark")
    return app, pipeline


def session_app(repo: Path, theme: str = "textual-dark") -> SessionApp:
    ledger = Ledger(repo / ".aetherflow" / "ledger.sqlite")
    fill_ledger(ledger)
    bus = EventBus()
    pipeline = ScriptedPipeline(bus, repo, {}, [])
    sources = SessionSources(
        pipeline=pipeline, new_run=lambda: RunKit(pipeline, bus), repo_root=repo, ledger=ledger,
        search=FakeSearch(sample_hits()), baseline=lambda: ("strong", Price(input=3.0, output=15.0)),
        budget_usd=0.5, clock=lambda: T0 + 12,
    )
    return SessionApp(sources, theme=theme)


def test_run_screen_mid_run(repo: Path, snap_compare) -> None:  # type: ignore[no-untyped-def]
    app, pipeline = run_app(repo)

    async def mid_run(pilot: Pilot) -> None:
        for label in ("planned", "first done"):
            await pipeline.wait_paused(label)
            pipeline.resume()
        await pipeline.wait_paused("mid run")
        app.run_screen.refresh_view()

    assert snap_compare(app, terminal_size=SIZE, run_before=mid_run)


def test_review_screen_with_a_skipped_hunk(repo: Path, snap_compare) -> None:  # type: ignore[no-untyped-def]
    app, pipeline = run_app(repo)

    async def to_review(pilot: Pilot) -> None:
        for label in ("planned", "first done", "mid run"):
            await pipeline.wait_paused(label)
            pipeline.resume()
        await app.workers.wait_for_complete([app.run_screen.worker])  # type: ignore[list-item]
        await pilot.pause()
        assert isinstance(app.screen, ReviewScreen)
        await pilot.press("down", "n")

    assert snap_compare(app, terminal_size=SIZE, run_before=to_review)


def test_session_request_tab_light_theme(repo: Path, snap_compare) -> None:  # type: ignore[no-untyped-def]
    app = session_app(repo, theme="textual-light")

    async def settle(pilot: Pilot) -> None:
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
        pilot.app.screen.query_one("#request-input").blur()  # no blinking cursor in the image

    assert snap_compare(app, terminal_size=SIZE, run_before=settle)


def test_session_history(repo: Path, snap_compare) -> None:  # type: ignore[no-untyped-def]
    app = session_app(repo)

    async def history(pilot: Pilot) -> None:
        await pilot.press("f3")
        await pilot.app.workers.wait_for_complete()

    assert snap_compare(app, terminal_size=SIZE, run_before=history)


def test_stats_panel(repo: Path, snap_compare) -> None:  # type: ignore[no-untyped-def]
    app = session_app(repo)

    async def stats(pilot: Pilot) -> None:
        await pilot.press("f5")
        await pilot.app.workers.wait_for_complete()

    assert snap_compare(app, terminal_size=SIZE, run_before=stats)
