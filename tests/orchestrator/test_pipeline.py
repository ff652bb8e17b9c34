"""The whole pipeline through the real gateway, router, scheduler, agents and workspace (scripted models)."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from pipeline_support import git, make_repo, plan_json, services_for, task, team_script

from aetherflow.orchestrator.pipeline import Pipeline
from aetherflow.workspace.apply import undo_last

FILES = {
    "app.py": "def greet(name):\n    return 'hi ' + name\n",
    "util.py": "def double(x):\n    return x * 2\n",
}
PLAN = plan_json([
    task("a", "MARK-A: make greet say hello"),
    task("b", "MARK-B: make double triple"),
    task("c", "MARK-C: review both changes", depends_on=["a", "b"], fmt="text", task_type="validation"),
])
EDITS = {
    "MARK-A": [{"path": "app.py", "search": "'hi '", "replace": "'hello '"}],
    "MARK-B": [{"path": "util.py", "search": "x * 2", "replace": "x * 3"}],
    "MARK-C": [],
}


def _run(pipeline: Pipeline, request: str = "scripted request"):
    return asyncio.run(pipeline.run(request))


@pytest.fixture
def repo(tmp_path):
    return make_repo(tmp_path / "repo", FILES)


def test_run_builds_the_change_set_in_the_worktree_only(repo, scripted_server):
    both_started = threading.Barrier(2, timeout=10)

    def meet(marker: str) -> None:
        # A and B must be in flight together to pass: a sequential scheduler would time out here.
        if marker in ("MARK-A", "MARK-B") and not getattr(meet, marker, False):
            setattr(meet, marker, True)
            both_started.wait()

    scripted_server.script = team_script(PLAN, EDITS, before_reply=meet)
    status_before = git(repo, "status", "--porcelain")
    pipeline = Pipeline(services_for(repo, scripted_server))

    result = _run(pipeline)

    assert result.status == "review", result.message
    assert {o.status for o in result.outcomes.values()} == {"done"}
    assert sorted(result.changeset.paths()) == ["app.py", "util.py"]
    app = result.changeset.get("app.py")
    assert "-    return 'hi ' + name" in app.diff() and "+    return 'hello ' + name" in app.diff()
    # The user's files and git state are untouched until review.
    assert (repo / "app.py").read_text() == FILES["app.py"]
    assert git(repo, "status", "--porcelain") == status_before
    # The dependent subtask received both dependencies' outputs.
    c_requests = [r for r in scripted_server.requests if "MARK-C" in json.dumps(r.body.get("messages", []))]
    assert c_requests and "MARK-A done" in json.dumps(c_requests[0].body) and "MARK-B done" in json.dumps(c_requests[0].body)
    a, b, c = (result.outcomes[t] for t in "abc")
    assert a.started_at < b.ended_at and b.started_at < a.ended_at
    assert c.started_at >= max(a.ended_at, b.ended_at)
    assert result.summary == "Scripted summary of the run."
    trace = (repo / ".aetherflow" / "runs" / result.run_id / "trace.jsonl").read_text().splitlines()
    assert {json.loads(line)["kind"] for line in trace} >= {"run_started", "plan_ready", "task_state", "call_finished"}


def test_accept_one_file_reject_the_other_then_undo(repo, scripted_server):
    scripted_server.script = team_script(PLAN, EDITS)
    pipeline = Pipeline(services_for(repo, scripted_server))
    result = _run(pipeline)

    record = pipeline.apply(result, {"app.py": "all"})

    assert (repo / "app.py").read_text() == FILES["app.py"].replace("'hi '", "'hello '")
    assert (repo / "util.py").read_text() == FILES["util.py"]
    assert record.files == ["app.py"]
    undo_last(repo)
    assert (repo / "app.py").read_bytes() == FILES["app.py"].encode()
    assert git(repo, "status", "--porcelain") == ""


def test_a_dirty_tree_is_kept_exactly_and_the_run_sees_it(repo, scripted_server):
    dirty = FILES["app.py"] + "# work in progress\n"
    (repo / "app.py").write_text(dirty)
    (repo / "notes.txt").write_text("untracked notes\n")
    scripted_server.script = team_script(PLAN, EDITS)
    pipeline = Pipeline(services_for(repo, scripted_server))

    result = _run(pipeline)

    assert (repo / "app.py").read_text() == dirty
    assert (repo / "notes.txt").read_text() == "untracked notes\n"
    pipeline.apply(result, {"app.py": "all", "util.py": "all"})
    assert (repo / "app.py").read_text() == dirty.replace("'hi '", "'hello '")


def test_images_reach_only_the_subtask_that_needs_vision(repo, scripted_server, tmp_path):
    image = tmp_path / "mockup.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    plan = plan_json([
        {**task("a", "MARK-A: make greet say hello"), "needs_vision": True},
        task("b", "MARK-B: make double triple"),
    ])
    scripted_server.script = team_script(plan, {"MARK-A": EDITS["MARK-A"], "MARK-B": EDITS["MARK-B"]})
    vision = ["tools", "json_schema", "streaming", "vision"]
    pipeline = Pipeline(services_for(repo, scripted_server, models={"strong": {"capabilities": vision}}))

    result = asyncio.run(pipeline.run("match the mockup", images=[image]))

    assert result.status == "review", result.message
    by_task = {m: [r for r in scripted_server.requests if f"{m}:" in json.dumps(r.body.get("messages", []))]
               for m in ("MARK-A", "MARK-B")}
    assert by_task["MARK-A"] and all(r.body["model"] == "strong" for r in by_task["MARK-A"])
    assert "data:image/png;base64," in json.dumps(by_task["MARK-A"][0].body)
    assert by_task["MARK-B"] and "data:image" not in json.dumps([r.body for r in by_task["MARK-B"]])
