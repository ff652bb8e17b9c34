"""The run screen driven by a scripted run: subtasks change state, cost rises, output follows; cancel is clean."""

from __future__ import annotations

from pathlib import Path

import pytest
from tui_support import UTIL
from textual.worker import WorkerCancelled
from tui_support import T0, Pause, ScriptedPipeline, run_script, tree_state

from aetherflow.errors import BudgetExceededError, RunInterrupted
from aetherflow.events import EventBus
from aetherflow.tui.app import RunApp
from aetherflow.tui.contracts import RunJob
from aetherflow.tui.screens.dialogs import ChoiceDialog, HelpScreen
from aetherflow.tui.screens.review import ReviewScreen
from aetherflow.tui.screens.run import RunScreen
from aetherflow.tui.widgets.cost_meter import CostMeter
from aetherflow.tui.widgets.error_list import ErrorList
from aetherflow.tui.widgets.plan_table import PlanTable
from aetherflow.tui.widgets.task_output import TaskOutput

REQUEST = "Rename check() to is_valid()"


def make_app(repo: Path, edits: dict[str, str | None] | None = None) -> tuple[RunApp, ScriptedPipeline]:
    bus = EventBus()
    pipeline = ScriptedPipeline(bus, repo, edits or {}, run_script("run-tui-1", REQUEST))
    app = RunApp(RunJob(request=REQUEST), pipeline, bus, repo_root=repo, clock=lambda: T0 + 12)
    return app, pipeline


def states(screen: RunScreen) -> dict[str, str]:
    table = screen.query_one(PlanTable)
    return {key: table.cell(key, "state") for key in table.task_ids}


def meter(screen: RunScreen) -> str:
    return screen.query_one(CostMeter).content.plain  # type: ignore[union-attr]


async def test_subtasks_change_state_and_cost_rises(repo: Path) -> None:
    app, pipeline = make_app(repo)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.run_screen
        await pipeline.wait_paused("planned")
        screen.refresh_view()
        assert states(screen) == {"rename": "· pending", "callers": "· pending", "docs": "· pending"}
        assert "$0.0123 of $0.50" in meter(screen)

        pipeline.resume()
        await pipeline.wait_paused("first done")
        screen.refresh_view()
        assert states(screen)["rename"] == "✓ done"
        assert "$0.0134 of $0.50" in meter(screen)

        pipeline.resume()
        await pipeline.wait_paused("mid run")
        screen.refresh_view()
        assert states(screen) == {"rename": "✓ done", "callers": "▶ running", "docs": "▶ running"}
        assert "$0.0143 of $0.50" in meter(screen)
        assert "tokens 3.4k in / 610 out" in meter(screen)
        assert "coder $0.0020" in meter(screen) and "orchestrator $0.0123" in meter(screen)
        # The output panel follows the first running subtask and shows its streamed text.
        assert screen.query_one(PlanTable).selected_task() == "callers"
        output = screen.query_one(TaskOutput)
        assert "Updating login() to call is_valid()." in output.query_one("#task-body").content.plain  # type: ignore[union-attr]
        # The retry is shown where it happened: on the docs row.
        assert "retry 2 on fast" in screen.query_one(PlanTable).cell("docs", "why")
        await pilot.pause()


async def test_moving_the_cursor_stops_following_until_f(repo: Path) -> None:
    app, pipeline = make_app(repo)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.run_screen
        for label in ("planned", "first done", "mid run"):
            await pipeline.wait_paused(label)
            if label != "mid run":
                pipeline.resume()
        screen.refresh_view()
        table = screen.query_one(PlanTable)
        table.focus()
        await pilot.press("up")
        screen.refresh_view()
        assert table.selected_task() == "rename"
        head = screen.query_one("#task-head").content.plain  # type: ignore[union-attr]
        assert head.startswith("rename  done  coder on fast")
        assert "Renaming check to is_valid." in screen.query_one("#task-body").content.plain  # type: ignore[union-attr]
        await pilot.press("f")
        assert table.selected_task() == "callers"


async def test_a_run_with_changes_opens_the_review(repo: Path) -> None:
    app, pipeline = make_app(repo, {"app/util.py": UTIL.replace("line 3\n", "line three\n")})
    async with app.run_test(size=(80, 24)) as pilot:
        for label in ("planned", "first done", "mid run"):
            await pipeline.wait_paused(label)
            pipeline.resume()
        await app.run_screen.worker.wait()  # type: ignore[union-attr]
        await pilot.pause()
        assert isinstance(app.screen, ReviewScreen)
        assert app.screen.state.changeset.paths() == ["app/util.py"]


async def test_cancel_asks_then_stops_the_run_and_leaves_the_tree_untouched(repo: Path) -> None:
    before = tree_state(repo)
    app, pipeline = make_app(repo, {"app/util.py": "changed\n"})
    async with app.run_test(size=(80, 24)) as pilot:
        await pipeline.wait_paused("planned")
        await pilot.press("q")
        assert isinstance(app.screen, ChoiceDialog)
        await pilot.press("n")  # keep running
        assert isinstance(app.screen, RunScreen) and app.run_screen.running
        await pilot.press("ctrl+c")
        assert isinstance(app.screen, ChoiceDialog)
        await pilot.press("y")
        with pytest.raises(WorkerCancelled):
            await app.run_screen.worker.wait()  # type: ignore[union-attr]
        await pilot.pause()
        screen = app.run_screen
        assert pipeline.cancelled and not screen.running
        screen.refresh_view()
        assert meter(screen).startswith("cancelled")
        assert screen.final is not None and screen.final.exit_code == 130
        assert "aether run --resume run-tui-1" in (screen.final.hint or "")
        await pilot.press("q")
        await pilot.pause()
    assert app.return_value == 130
    assert pipeline.applied == []
    assert tree_state(repo) == before


def no_pauses(run_id: str) -> list:  # type: ignore[type-arg]
    return [item for item in run_script(run_id, REQUEST) if not isinstance(item, Pause)]


@pytest.mark.parametrize(
    ("error", "outcome", "code", "hint"),
    [
        (BudgetExceededError("The next call would pass the $0.50 budget.", "Raise it with --budget."), "failed", 1,
         "Raise it with --budget."),
        (RunInterrupted("Every provider is down."), "interrupted", 1, "aether run --resume run-tui-1"),
    ],
)
async def test_a_run_that_stops_shows_why_and_what_to_do(repo: Path, error, outcome, code, hint) -> None:  # type: ignore[no-untyped-def]
    bus = EventBus()
    pipeline = ScriptedPipeline(bus, repo, {}, no_pauses("run-tui-1"), error=error)
    app = RunApp(RunJob(request=REQUEST), pipeline, bus, repo_root=repo, clock=lambda: T0 + 12)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete([app.run_screen.worker])  # type: ignore[list-item]
        screen = app.run_screen
        screen.refresh_view()
        errors = screen.query_one(ErrorList)
        assert errors.display
        text = errors.content.plain  # type: ignore[union-attr]
        assert error.message in text and hint in text and "Press q to close." in text
        await pilot.press("q")
        await pilot.pause()
    assert app.return_value == code and app.outcome is not None and app.outcome.outcome == outcome


async def test_a_run_without_changes_says_so_and_exits_zero(repo: Path) -> None:
    bus = EventBus()
    pipeline = ScriptedPipeline(bus, repo, {}, no_pauses("run-tui-1"))
    app = RunApp(RunJob(request=REQUEST), pipeline, bus, repo_root=repo, clock=lambda: T0 + 12)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete([app.run_screen.worker])  # type: ignore[list-item]
        app.run_screen.refresh_view()
        assert meter(app.run_screen).startswith("finished")
        await pilot.press("q")
        await pilot.pause()
    assert app.return_value == 0 and app.outcome is not None and app.outcome.outcome == "no_changes"


async def test_clicking_a_row_selects_that_subtask_and_help_lists_the_keys(repo: Path) -> None:
    app, pipeline = make_app(repo)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.run_screen
        for label in ("planned", "first done"):
            await pipeline.wait_paused(label)
            pipeline.resume()
        await pipeline.wait_paused("mid run")
        screen.refresh_view()
        await pilot.click(PlanTable, offset=(3, 3))  # the header is line 0: line 3 is the third subtask
        assert screen.query_one(PlanTable).selected_task() == "docs"
        assert screen.query_one(PlanTable).manual
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert app.screen is screen
