"""Review: per-hunk and per-file decisions, the confirmation's exact text, and what lands on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Static
from tui_support import UTIL
from tui_support import T0, ScriptedPipeline, run_script, sample_changeset, tree_state

from aetherflow.events import EventBus
from aetherflow.tui.app import RunApp
from aetherflow.tui.contracts import RunJob
from aetherflow.tui.review_state import ReviewState
from aetherflow.tui.screens.dialogs import ChoiceDialog
from aetherflow.tui.screens.review import ReviewScreen
from aetherflow.tui.widgets.file_table import FileTable
from aetherflow.workspace.changeset import ChangeSet, build_file_change

NEW_UTIL = UTIL.replace("line 3\n", "line three\n").replace("line 20\n", "line twenty\n").replace(
    "line 37\n", "line thirty-seven\n"
)
JWT = "def encode(claims):\n    return sign(claims)\n"
EDITS: dict[str, str | None] = {"app/util.py": NEW_UTIL, "app/jwt.py": JWT, "README.md": "# Demo\n\nNow with JWT.\n"}


def test_a_file_without_hunks_is_taken_or_left_whole() -> None:
    changeset = ChangeSet(run_id="r", files=[
        build_file_change("logo.png", None, None, binary=True, status="added", new_blob="abc"),
    ])  # fmt: skip
    state = ReviewState(changeset)
    assert state.selection() == {"logo.png": "all"}
    assert state.plan().lines() == ["logo.png: new file (+0 -0)"]
    state.set_file("logo.png", False)
    assert state.selection() == {} and state.plan().lines() == ["left unchanged: logo.png"]


def test_review_state_selection_and_plan() -> None:
    state = ReviewState(sample_changeset())
    assert state.selection() == {"app/util.py": "all", "app/jwt.py": "all", "old/legacy.py": "all"}
    state.set_hunk("app/util.py", 1, False)
    state.set_file("old/legacy.py", False)
    assert state.file_decision("app/util.py") == "partial"
    assert state.selection() == {"app/util.py": {0, 2}, "app/jwt.py": "all"}
    assert state.plan().lines() == [
        "app/util.py: hunks 1, 3 of 3 (+2 -2)",
        "app/jwt.py: new file (+2 -0)",
        "left unchanged: old/legacy.py",
    ]
    state.set_all(False)
    assert state.selection() == {} and state.plan().empty
    state.toggle_hunk("app/util.py", 2)
    assert state.selection() == {"app/util.py": {2}}
    with pytest.raises(KeyError):
        state.set_hunk("app/util.py", 7, True)


async def finish_run(app: RunApp, pipeline: ScriptedPipeline, pilot) -> ReviewScreen:  # type: ignore[no-untyped-def]
    for label in ("planned", "first done", "mid run"):
        await pipeline.wait_paused(label)
        pipeline.resume()
    await app.workers.wait_for_complete([app.run_screen.worker])  # type: ignore[list-item]
    await pilot.pause()
    assert isinstance(app.screen, ReviewScreen)
    return app.screen


def make_app(repo: Path, commit: bool = False) -> tuple[RunApp, ScriptedPipeline]:
    bus = EventBus()
    pipeline = ScriptedPipeline(bus, repo, dict(EDITS), run_script("run-tui-1", "Add JWT"))
    app = RunApp(RunJob(request="Add JWT", commit=commit), pipeline, bus, repo_root=repo, clock=lambda: T0 + 12)
    return app, pipeline


async def test_rejecting_a_hunk_and_a_file_applies_exactly_the_rest(repo: Path) -> None:
    app, pipeline = make_app(repo)
    async with app.run_test(size=(80, 24)) as pilot:
        review = await finish_run(app, pipeline, pilot)
        files = review.query_one(FileTable)
        assert list(files.rows) == ["README.md", "app/jwt.py", "app/util.py"]
        assert review.current_file.path == "README.md"
        await pilot.press("r")  # skip the README entirely
        await pilot.press("down", "down")
        assert review.current_file.path == "app/util.py" and review.current_hunk == 0
        await pilot.press("j")  # the second hunk
        assert review.current_hunk == 1
        await pilot.press("n")  # skip it
        assert files.get_cell("app/util.py", "decision").plain == "◐"
        assert files.get_cell("README.md", "decision").plain == "✗"
        await pilot.press("enter")
        dialog = app.screen
        assert isinstance(dialog, ChoiceDialog)
        assert dialog.body == [
            f"Apply to {repo}:",
            "  app/jwt.py: new file (+2 -0)",
            "  app/util.py: hunks 1, 3 of 3 (+2 -2)",
            "  left unchanged: README.md",
            "",
            "Nothing else changes. `aether undo` restores the files exactly.",
        ]
        await pilot.press("y")
        await app.workers.wait_for_complete()
        await pilot.pause()
    assert pipeline.applied == [{"app/jwt.py": "all", "app/util.py": {0, 2}}]
    expected = UTIL.replace("line 3\n", "line three\n").replace("line 37\n", "line thirty-seven\n")
    assert (repo / "app/util.py").read_text() == expected
    assert (repo / "app/jwt.py").read_text() == JWT
    assert (repo / "README.md").read_text() == "# Demo\n"
    assert app.return_value == 0
    assert app.outcome is not None and app.outcome.outcome == "applied"
    assert app.outcome.message == "Applied 2 file(s) from run run-tui-1: app/jwt.py, app/util.py."


async def test_accept_all_after_reject_all_applies_everything(repo: Path) -> None:
    app, pipeline = make_app(repo)
    async with app.run_test(size=(80, 24)) as pilot:
        review = await finish_run(app, pipeline, pilot)
        await pilot.press("R")
        assert review.state.selection() == {}
        await pilot.press("enter")  # nothing accepted: a warning, no dialog
        assert app.screen is review
        await pilot.press("A", "enter", "y")
        await app.workers.wait_for_complete()
        await pilot.pause()
    assert (repo / "app/util.py").read_text() == NEW_UTIL
    assert (repo / "README.md").read_text() == "# Demo\n\nNow with JWT.\n"


async def test_a_file_changed_since_the_run_began_is_refused_and_nothing_is_applied(repo: Path) -> None:
    app, pipeline = make_app(repo)
    async with app.run_test(size=(80, 24)) as pilot:
        review = await finish_run(app, pipeline, pilot)
        (repo / "README.md").write_text("# Mine\n")  # the user edits while reviewing
        before = tree_state(repo)
        await pilot.press("enter", "y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.screen is review  # still reviewing, with the error shown
        assert not review._applying
        assert any("you changed these files after the run began: README.md" in n.message
                   for n in app._notifications)
    assert tree_state(repo) == before


async def test_protected_files_the_run_tried_to_change_are_named_as_held_back_and_never_applied(repo: Path) -> None:
    bus = EventBus()
    edits = {**EDITS, ".github/workflows/ci.yml": "on: push\njobs: {}\n"}
    pipeline = ScriptedPipeline(bus, repo, edits, run_script("run-tui-1", "Add JWT"))
    app = RunApp(RunJob(request="Add JWT"), pipeline, bus, repo_root=repo, clock=lambda: T0 + 12)
    async with app.run_test(size=(200, 24)) as pilot:
        review = await finish_run(app, pipeline, pilot)
        head = str(review.query_one("#review-head", Static).render())
        assert "held back (protected, never applied): .github/workflows/ci.yml" in head
        assert ".github/workflows/ci.yml" not in list(review.query_one(FileTable).rows)
        await pilot.press("enter", "y")
        await app.workers.wait_for_complete()
        await pilot.pause()
    assert pipeline.applied and not (repo / ".github").exists()


async def test_leaving_and_discarding_drops_the_worktree_and_applies_nothing(repo: Path) -> None:
    before = tree_state(repo)
    app, pipeline = make_app(repo)
    async with app.run_test(size=(80, 24)) as pilot:
        await finish_run(app, pipeline, pilot)
        await pilot.press("q")
        assert isinstance(app.screen, ChoiceDialog)
        await pilot.press("d")
        await app.workers.wait_for_complete()
        await pilot.pause()
    assert pipeline.discarded == ["run-tui-1"] and pipeline.applied == []
    assert not (repo / ".aetherflow/worktrees/run-tui-1").exists()
    assert tree_state(repo) == before
    assert app.outcome is not None and app.outcome.outcome == "discarded" and app.return_value == 0


async def test_keep_for_later_leaves_the_change_set_reviewable(repo: Path) -> None:
    app, pipeline = make_app(repo)
    async with app.run_test(size=(80, 24)) as pilot:
        await finish_run(app, pipeline, pilot)
        await pilot.press("escape", "k")
        await pilot.pause()
    assert pipeline.discarded == [] and (repo / ".aetherflow/worktrees/run-tui-1").is_dir()
    assert app.outcome is not None and app.outcome.outcome == "kept"
    assert "Re-open it from the history" in (app.outcome.hint or "")


async def test_commit_is_announced_and_passed_to_apply_and_the_theme_can_switch(repo: Path) -> None:
    app, pipeline = make_app(repo, commit=True)
    async with app.run_test(size=(80, 24)) as pilot:
        review = await finish_run(app, pipeline, pilot)
        dark = app.current_theme.dark
        await pilot.press("ctrl+t")
        assert app.current_theme.dark is not dark and app.screen is review
        await pilot.press("enter")
        assert isinstance(app.screen, ChoiceDialog)
        assert "They are then committed (only these files)." in app.screen.body[-1]
        await pilot.press("y")
        await app.workers.wait_for_complete()
        await pilot.pause()
    assert pipeline.commits == [True]
