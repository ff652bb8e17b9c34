"""The session: a typed request runs and is reviewed in place; history, re-opening, search, stats, theme, help."""

from __future__ import annotations

from pathlib import Path

import pytest
from tui_support import UTIL
from textual.widgets import Input, TabbedContent
from tui_support import (
    T0,
    FakeResult,
    FakeSearch,
    Pause,
    ScriptedPipeline,
    fill_ledger,
    run_script,
    sample_changeset,
    sample_hits,
)

from aetherflow.config.models import Price
from aetherflow.events import EventBus
from aetherflow.ledger.store import Ledger
from aetherflow.tui.app import SessionApp
from aetherflow.tui.screens.dialogs import HelpScreen
from aetherflow.tui.screens.review import ReviewScreen
from aetherflow.tui.screens.run import RunScreen
from aetherflow.tui.screens.session import RunKit, SessionScreen, SessionSources
from aetherflow.tui.widgets.history_panel import HistoryTable
from aetherflow.tui.widgets.search_panel import NO_INDEX, SearchTable
from aetherflow.tui.widgets.stats_panel import daily_series

STRONG = Price(input=3.0, output=15.0)


def plain(widget) -> str:  # type: ignore[no-untyped-def]
    content = widget.content
    return content if isinstance(content, str) else content.plain


@pytest.fixture
def ledger(repo: Path) -> Ledger:
    ledger = Ledger(repo / ".aetherflow" / "ledger.sqlite")
    fill_ledger(ledger)
    return ledger


def make_app(repo: Path, ledger: Ledger | None, search: FakeSearch | None = None,
             edits: dict[str, str | None] | None = None) -> tuple[SessionApp, ScriptedPipeline, list[str]]:
    bus = EventBus()
    script = [item for item in run_script("run-tui-1", "x") if not isinstance(item, Pause)]
    pipeline = ScriptedPipeline(bus, repo, edits or {}, script)
    closed: list[str] = []

    async def close() -> None:
        closed.append("kit")

    sources = SessionSources(
        pipeline=pipeline, new_run=lambda: RunKit(pipeline, bus, close), repo_root=repo, ledger=ledger,
        search=search, baseline=lambda: ("strong", STRONG), budget_usd=0.5, clock=lambda: T0 + 12,
    )
    return SessionApp(sources), pipeline, closed


async def test_a_typed_request_runs_then_reviews_and_applies_in_place(repo: Path, ledger: Ledger) -> None:
    new_util = UTIL.replace("line 3\n", "line three\n")
    search = FakeSearch(sample_hits())
    app, pipeline, closed = make_app(repo, ledger, search=search, edits={"app/util.py": new_util})
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press(*"Rename it", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, (RunScreen, ReviewScreen))
        for screen in app.screen_stack:
            if isinstance(screen, RunScreen):
                await app.workers.wait_for_complete([screen.worker])  # type: ignore[list-item]
        await pilot.pause()
        assert isinstance(app.screen, ReviewScreen)
        await pilot.press("enter", "y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, SessionScreen)
        status = plain(app.screen.query_one("#request-status"))
        assert status.startswith("Applied 1 file(s) from run run-tui-1: app/util.py.")
        assert app.screen.query_one("#request-input", Input).value == ""
    assert pipeline.calls == [{"request": "Rename it", "images": None, "resume_id": None}]
    assert (repo / "app/util.py").read_text() == new_util
    assert closed == ["kit"]
    assert search.closed  # released before the run, which needs the index store for itself


async def test_an_empty_request_asks_for_one(repo: Path, ledger: Ledger) -> None:
    app, pipeline, _ = make_app(repo, ledger)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("enter")
        await pilot.pause()
        assert plain(app.screen.query_one("#request-status")) == "Type what should change first, then press Enter."
    assert pipeline.calls == []


async def test_history_lists_runs_and_reopens_one_left_for_review(repo: Path, ledger: Ledger) -> None:
    app, pipeline, _ = make_app(repo, ledger)
    pipeline.results["run-b"] = FakeResult(run_id="run-b", status="review", changeset=sample_changeset("run-b"))
    pipeline.results["run-a"] = FakeResult(run_id="run-a", status="applied", changeset=sample_changeset("run-a"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f3")
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.screen.query_one(HistoryTable)
        assert list(table.rows) == ["run-c", "run-b", "run-a"]
        assert table.get_cell("run-a", "files").plain == "2/1"
        assert table.get_cell("run-c", "status").plain == "failed"
        await pilot.press("down", "down", "enter")  # run-a: applied already
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, SessionScreen)
        assert any("run-a has nothing left to review (it is applied)" in n.message for n in app._notifications)
        await pilot.press("up", "enter")  # run-b: kept for review
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, ReviewScreen)
        assert app.screen.state.changeset.run_id == "run-b"


async def test_search_shows_hits_and_previews_code(repo: Path, ledger: Ledger) -> None:
    search = FakeSearch(sample_hits())
    app, _, _ = make_app(repo, ledger, search=search)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f4", *"where is login", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.screen.query_one(SearchTable)
        assert [table.get_cell(k, "location").plain for k in ("0", "1")] == ["app/auth.py:1-2", "app/auth.py:5-6"]
        assert search.queries == ["where is login"]
        await pilot.pause()
        assert app.screen.query_one(TabbedContent).active == "search"


async def test_search_without_an_index_says_how_to_build_one(repo: Path, ledger: Ledger) -> None:
    app, _, _ = make_app(repo, ledger, search=FakeSearch([], exists=False))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f4", *"anything", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert plain(app.screen.query_one("#search-code")) == NO_INDEX


async def test_stats_show_spend_savings_and_cache_hits(repo: Path, ledger: Ledger) -> None:
    app, _, _ = make_app(repo, ledger)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f5")
        await app.workers.wait_for_complete()
        await pilot.pause()
        summary = plain(app.screen.query_one("#stats-summary"))
        assert "Spent $0.0652 over 3 run(s), 8 call(s)" in summary
        # Savings compare successful runs only: the one applied run's calls, priced on the strong model.
        assert "strong alone would have cost $0.0159  saved 16% on 1 successful run" in summary
        assert "Succeeded 1 of 3 finished run(s) (33%)" in summary
        assert "Cache hits 1 (12%)" in summary and "accepted 67%" in summary
        models = plain(app.screen.query_one("#stats-models")).splitlines()
        assert models[1].startswith("strong ") and models[1].endswith("$0.0619")
        assert models[2].startswith("fast   ") and models[2].endswith("$0.0033")


def test_daily_series_fills_missing_days_with_zero() -> None:
    series, first, last = daily_series({"2026-09-18": 1.0, "2026-09-21": 2.0})
    assert series == [1.0, 0.0, 0.0, 2.0] and (first, last) == ("2026-09-18", "2026-09-21")
    assert daily_series({}) == ([], "", "")


async def test_theme_switch_and_help(repo: Path, ledger: Ledger) -> None:
    app, _, _ = make_app(repo, ledger)
    async with app.run_test(size=(80, 24)) as pilot:
        dark = app.current_theme.dark
        await pilot.press("ctrl+t")
        assert app.current_theme.dark is not dark
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, SessionScreen)
