"""The TUI over the real Pipeline (gateway, router, scheduler, agents, workspace) and the scripted model server.

The server's script plays the planner and two agents; a gate in the script holds subtask B so the test can look
at the run screen mid-run, then either let it finish (review, apply) or cancel it.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from textual.worker import WorkerCancelled
from tui_support import make_repo, tree_state

from aetherflow.orchestrator.pipeline import Pipeline
from aetherflow.services import Services
from aetherflow.testing.script import Fault, RecordedRequest, Reply, ToolCallSpec
from aetherflow.testing.settings import scripted_environ, scripted_settings
from aetherflow.tui.app import RunApp
from aetherflow.tui.contracts import RunJob
from aetherflow.tui.screens.dialogs import ChoiceDialog
from aetherflow.tui.screens.review import ReviewScreen
from aetherflow.tui.widgets.plan_table import PlanTable

FILES = {"app.py": "def greet(name):\n    return 'hi ' + name\n", "util.py": "def double(x):\n    return x * 2\n"}
PLAN = {"summary": "two edits", "tasks": [
    {"id": "a", "type": "local_refactor", "description": "MARK-A: make greet say hello", "depends_on": []},
    {"id": "b", "type": "local_refactor", "description": "MARK-B: make double triple", "depends_on": ["a"]},
]}
EDITS = {
    "MARK-A": {"path": "app.py", "search": "'hi '", "replace": "'hello '"},
    "MARK-B": {"path": "util.py", "search": "x * 2", "replace": "x * 3"},
}


class Team:
    """The scripted planner and agents; `gate` holds MARK-B's first call until the test opens it."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.b_waiting = threading.Event()
        self.steps: dict[str, int] = {}

    def __call__(self, req: RecordedRequest) -> Reply | Fault:
        messages = req.body.get("messages", [])
        if req.body.get("response_format"):
            return Reply(json=PLAN)
        if messages and "Summarise" in str(messages[0].get("content")):
            return Reply(text="Greeting and doubling changed.")
        text = json.dumps(messages)
        marker = next((m for m in EDITS if f"{m}:" in text), None)
        if marker is None:
            return Fault(status=500, message="unknown request")
        if marker == "MARK-B":
            self.b_waiting.set()
            self.gate.wait(timeout=20)
        step = self.steps[marker] = self.steps.get(marker, 0) + 1
        if step == 1:
            return Reply(tool_calls=[ToolCallSpec(name="edit_file", arguments=EDITS[marker])])
        return Reply(text=f"{marker} done")


@pytest.fixture
def team(scripted_server) -> Team:  # type: ignore[no-untyped-def]
    team = Team()
    scripted_server.script = team
    yield team
    team.gate.set()  # never leave a server thread waiting


def make_app(tmp_path: Path, server) -> tuple[RunApp, Pipeline, Path]:  # type: ignore[no-untyped-def]
    repo = make_repo(tmp_path / "repo", FILES)
    services = Services(scripted_settings(server, cache={"enabled": False}), repo, environ=scripted_environ())
    pipeline = Pipeline(services)
    return RunApp(RunJob(request="greet and triple"), pipeline, services.bus, repo_root=repo), pipeline, repo


async def wait_for(event: threading.Event, pilot) -> None:  # type: ignore[no-untyped-def]
    while not event.is_set():
        await pilot.pause(0.02)


async def test_a_real_run_shows_progress_then_applies_only_the_accepted_file(tmp_path, scripted_server, team):
    app, pipeline, repo = make_app(tmp_path, scripted_server)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.run_screen
        await wait_for(team.b_waiting, pilot)
        screen.refresh_view()
        table = screen.query_one(PlanTable)
        assert table.cell("a", "state") == "✓ done" and table.cell("b", "state") == "▶ running"
        cost_mid = screen.board.snapshot().cost_usd
        assert cost_mid > 0
        team.gate.set()
        await app.workers.wait_for_complete([screen.worker])  # type: ignore[list-item]
        await pilot.pause()
        assert screen.board.snapshot().cost_usd > cost_mid
        review = app.screen
        assert isinstance(review, ReviewScreen)
        assert review.state.changeset.paths() == ["app.py", "util.py"]
        await pilot.press("down", "r", "enter", "y")  # skip util.py, apply app.py
        await app.workers.wait_for_complete()
        await pilot.pause()
    await pipeline.services.gateway.aclose()
    assert (repo / "app.py").read_text() == "def greet(name):\n    return 'hello ' + name\n"
    assert (repo / "util.py").read_text() == FILES["util.py"]
    assert app.return_value == 0 and app.outcome is not None and app.outcome.outcome == "applied"
    outcomes = pipeline.services.ledger.query("SELECT path, accepted FROM outcomes ORDER BY path")  # type: ignore[union-attr]
    assert [tuple(row) for row in outcomes] == [("app.py", 1), ("util.py", 0)]


async def test_cancelling_a_real_run_leaves_the_tree_untouched_and_the_run_resumable(tmp_path, scripted_server,
                                                                                     team):
    app, pipeline, repo = make_app(tmp_path, scripted_server)
    before = tree_state(repo)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.run_screen
        await wait_for(team.b_waiting, pilot)
        await pilot.press("ctrl+c")
        assert isinstance(app.screen, ChoiceDialog)
        await pilot.press("y")
        with pytest.raises(WorkerCancelled):
            await screen.worker.wait()  # type: ignore[union-attr]
        await pilot.pause()
        assert screen.final is not None and screen.final.outcome == "cancelled"
        run_id = screen.board.run_id
        await pilot.press("q")
        await pilot.pause()
    await pipeline.services.gateway.aclose()
    assert app.return_value == 130
    assert tree_state(repo) == before
    state = pipeline.store.load(run_id)  # type: ignore[arg-type]
    assert state.status == "cancelled" and "a" in state.outcomes  # the finished subtask is kept for --resume
