"""The pipeline's edge cases, through the real wiring with a scripted team: Ctrl-C and resume, the budget stop,
syntax escalation, the fix-checks round, path traversal, and a provider outage. The user's tree is compared byte
for byte (and by `git status --porcelain`) before and after every run."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from pipeline_support import make_repo, plan_json, services_for, task, team_script, tree_state

from aetherflow.errors import RunInterrupted
from aetherflow.orchestrator.pipeline import Pipeline
from aetherflow.orchestrator.runstate import RunStore
from aetherflow.testing.script import Fault, RecordedRequest, Reply, ToolCallSpec

FILES = {
    "app.py": "def greet(name):\n    return 'hi ' + name\n",
    "util.py": "def double(x):\n    return x * 2\n",
}
EDITS = {
    "MARK-A": [{"path": "app.py", "search": "'hi '", "replace": "'hello '"}],
    "MARK-B": [{"path": "util.py", "search": "x * 2", "replace": "x * 3"}],
}
TWO_INDEPENDENT = plan_json([task("a", "MARK-A: make greet say hello"), task("b", "MARK-B: make double triple")])


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", FILES)


def _about(marker: str, requests: list[RecordedRequest]) -> list[RecordedRequest]:
    """The requests of the subtask whose description starts with `marker` (a dependent's requests only carry
    the dependency's output, "<marker> done")."""
    return [r for r in requests if f"{marker}:" in r.message_text()]


def _planner_calls(requests: list[RecordedRequest]) -> int:
    return sum(1 for r in requests if r.body.get("response_format"))


async def _close(pipeline: Pipeline) -> None:
    await pipeline.services.gateway.aclose()


def _is_agent_turn_after_tool(req: RecordedRequest) -> bool:
    messages = req.body.get("messages", [])
    return bool(messages) and messages[-1].get("role") == "tool"


# ---- Ctrl-C and resume -------------------------------------------------------------------------------------


async def test_cancel_mid_run_leaves_the_tree_untouched_and_resume_skips_the_finished_subtask(repo, scripted_server):
    plan = plan_json([task("a", "MARK-A: make greet say hello"),
                      task("b", "MARK-B: make double triple", depends_on=["a"])])
    team = team_script(plan, EDITS)
    entered, release = threading.Event(), threading.Event()
    holding = [True]

    def script(req: RecordedRequest) -> Reply | Fault:
        if holding[0] and "MARK-B" in req.message_text():
            entered.set()  # b is in flight, so a has finished and its outcome is saved
            release.wait(30)
            return Fault(status=500, message="answered after the client went away")
        return team(req)

    scripted_server.script = script
    before = tree_state(repo)
    pipeline = Pipeline(services_for(repo, scripted_server))
    runner = asyncio.create_task(pipeline.run("scripted request"))
    try:
        assert await asyncio.to_thread(entered.wait, 30), "subtask b never reached the server"
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
    finally:
        release.set()
        await _close(pipeline)

    assert tree_state(repo) == before
    [run_id] = [p.name for p in RunStore(repo).root.iterdir()]
    state = RunStore(repo).load(run_id)
    assert state.status == "cancelled" and f"aether run --resume {run_id}" in state.message
    assert state.outcomes["a"]["status"] == "done" and "b" not in state.outcomes

    holding[0] = False
    a_requests, planner_calls = len(_about("MARK-A", scripted_server.requests)), _planner_calls(scripted_server.requests)
    resumed = Pipeline(services_for(repo, scripted_server))
    try:
        result = await resumed.run("", resume_id=run_id)
    finally:
        await _close(resumed)

    assert result.status == "review", result.message
    assert len(_about("MARK-A", scripted_server.requests)) == a_requests, "the finished subtask ran again"
    assert _planner_calls(scripted_server.requests) == planner_calls, "the plan was made again"
    assert sorted(result.changeset.paths()) == ["app.py", "util.py"]
    assert tree_state(repo) == before


# ---- budget stop -------------------------------------------------------------------------------------------


async def test_a_tiny_budget_plans_then_skips_subtasks_and_the_run_resumes_with_more(repo, scripted_server):
    scripted_server.script = team_script(TWO_INDEPENDENT, EDITS)
    before = tree_state(repo)
    # The planner's worst case fits in $0.05; a subtask's (40,000 output tokens on "fast": $0.08) does not.
    tight = services_for(repo, scripted_server, budget={"per_run_usd": 0.05}, agents={
        "orchestrator": {"max_output_tokens": 2000},
        "editor": {"max_output_tokens": 40000}, "coder": {"max_output_tokens": 40000},
    })
    pipeline = Pipeline(tight)
    try:
        with pytest.raises(RunInterrupted) as stopped:
            await pipeline.run("scripted request")
    finally:
        await _close(pipeline)

    assert "budget reached: 2 subtask(s) not run" in stopped.value.message
    assert "aether run --resume" in stopped.value.message
    assert _planner_calls(scripted_server.requests) == 1
    assert not _about("MARK-A", scripted_server.requests) and not _about("MARK-B", scripted_server.requests)
    [run_id] = [p.name for p in RunStore(repo).root.iterdir()]
    state = RunStore(repo).load(run_id)
    assert state.status == "failed"
    assert {o["status"] for o in state.outcomes.values()} == {"skipped"}
    assert all(o["error"].startswith("budget reached") for o in state.outcomes.values())
    assert tree_state(repo) == before

    resumed = Pipeline(services_for(repo, scripted_server))
    try:
        result = await resumed.run("", resume_id=run_id)
    finally:
        await _close(resumed)
    assert result.status == "review" and sorted(result.changeset.paths()) == ["app.py", "util.py"]
    assert _planner_calls(scripted_server.requests) == 1


# ---- syntax failure: fix round, then escalation ------------------------------------------------------------


def _escalation_script(plan: dict) -> Callable[[RecordedRequest], Reply]:
    """"fast" breaks util.py twice (first try, then its fix round); "strong" starts again from the original file
    (the failed attempt's edits were taken back) and makes the change."""
    fast_edits = [("x * 2", "x * (2"), ("x * (2", "x * ((2")]
    fast_loops = [0]

    def script(req: RecordedRequest) -> Reply:
        messages = req.body.get("messages", [])
        if req.body.get("response_format"):
            return Reply(json=plan)
        if "Summarise" in str(messages[0].get("content")):
            return Reply(text="summary")
        if _is_agent_turn_after_tool(req):
            return Reply(text="MARK-S done")
        if req.body["model"] == "fast":
            search, replace = fast_edits[min(fast_loops[0], 1)]
            fast_loops[0] += 1
        else:
            search, replace = "x * 2", "x * 3"
        args = {"path": "util.py", "search": search, "replace": replace}
        return Reply(tool_calls=[ToolCallSpec(name="edit_file", arguments=args)])

    return script


async def test_a_syntax_failure_gets_a_fix_round_then_escalates_to_the_strong_model(repo, scripted_server):
    spec = task("s", "MARK-S: make double triple")
    spec["fallback_strategy"] = ["next_agent", "fail"]
    scripted_server.script = _escalation_script(plan_json([spec]))
    pipeline = Pipeline(services_for(repo, scripted_server))
    try:
        result = await pipeline.run("scripted request")
    finally:
        await _close(pipeline)

    loop_starts = [r for r in _about("MARK-S", scripted_server.requests) if not _is_agent_turn_after_tool(r)]
    assert [r.body["model"] for r in loop_starts] == ["fast", "fast", "strong"]
    assert "do not pass validation" in loop_starts[1].message_text()  # the fix round saw the syntax error
    outcome = result.outcomes["s"]
    assert (outcome.status, outcome.alias, outcome.attempts) == ("done", "strong", 2)
    assert result.changeset.get("util.py").new_text == "def double(x):\n    return x * 3\n"
    [row] = pipeline.services.ledger.query("SELECT validation_first_try FROM tasks WHERE task_id = 's'")
    assert row["validation_first_try"] == 0


# ---- failing configured check: the fix-checks round --------------------------------------------------------


def _checks_script(plan: dict) -> Callable[[RecordedRequest], Reply]:
    wrong = {"path": "util.py", "search": "    return x * 2\n",
             "replace": "    return x * 2\n\n\ndef triple(x):\n    return x + x\n"}
    fix = {"path": "util.py", "search": "return x + x", "replace": "return x * 3"}

    def script(req: RecordedRequest) -> Reply:
        messages, text = req.body.get("messages", []), req.message_text()
        if req.body.get("response_format"):
            return Reply(json=plan)
        if "Summarise" in str(messages[0].get("content")):
            return Reply(text="summary")
        if _is_agent_turn_after_tool(req) or "MARK-N:" in text:
            return Reply(text="done")
        edit = fix if ("checks fail" in text or "do not pass validation" in text) else wrong
        return Reply(tool_calls=[ToolCallSpec(name="edit_file", arguments=edit)])

    return script


async def _run_with_triple_check(tmp_path, scripted_server, plan: dict):
    """Run `plan` in a repository whose check passes only once util.triple(2) == 6."""
    check = "import sys, util\nsys.exit(0 if util.triple(2) == 6 else 'triple(2) is not 6')\n"
    repo = make_repo(tmp_path / "repo", {**FILES, "check.py": check})
    scripted_server.script = _checks_script(plan)
    command = f'"{sys.executable}" check.py'
    pipeline = Pipeline(services_for(repo, scripted_server, checks={"commands": {"tests": command}}))
    try:
        return pipeline, await pipeline.run("scripted request")
    finally:
        await _close(pipeline)


async def test_in_a_plan_of_several_subtasks_a_failing_check_triggers_the_fix_checks_round(tmp_path, scripted_server):
    plan = plan_json([task("t", "MARK-T: add triple to util.py"),
                      task("n", "MARK-N: note what changed", depends_on=["t"], fmt="text", task_type="analysis")])
    pipeline, result = await _run_with_triple_check(tmp_path, scripted_server, plan)

    fix_requests = [r for r in scripted_server.requests if "checks fail" in r.message_text()]
    assert fix_requests and {r.body["model"] for r in fix_requests} == {"strong"}  # debugging -> reasoner
    assert "triple(2) is not 6" in fix_requests[0].message_text()
    assert [(c.name, c.ok) for c in result.checks] == [("tests", True)]
    assert "return x * 3" in result.changeset.get("util.py").new_text


async def test_a_single_subtask_is_finished_only_when_the_checks_pass(tmp_path, scripted_server):
    plan = plan_json([task("t", "MARK-T: add triple to util.py")])
    pipeline, result = await _run_with_triple_check(tmp_path, scripted_server, plan)

    fix_requests = [r for r in scripted_server.requests if "do not pass validation" in r.message_text()]
    assert fix_requests and {r.body["model"] for r in fix_requests} == {"fast"}  # the same agent fixes its work
    assert "triple(2) is not 6" in fix_requests[0].message_text()
    assert not [r for r in scripted_server.requests if "checks fail" in r.message_text()]  # no fix-checks subtask
    assert [(c.name, c.ok) for c in result.checks] == [("tests", True)]
    assert "return x * 3" in result.changeset.get("util.py").new_text
    [row] = pipeline.services.ledger.query("SELECT validation_first_try FROM tasks WHERE task_id = 't'")
    assert row["validation_first_try"] == 0


# ---- path traversal ----------------------------------------------------------------------------------------


async def test_an_edit_outside_the_repository_is_refused_and_the_task_fails_without_a_usable_edit(repo, scripted_server):
    evil = {"MARK-E": [{"path": "../../etc/passwd", "search": "root", "replace": "owned"}]}
    spec = task("e", "MARK-E: tidy the system files")
    spec["fallback_strategy"] = ["fail"]
    scripted_server.script = team_script(plan_json([spec]), evil)
    passwd = Path("/etc/passwd").read_bytes() if Path("/etc/passwd").is_file() else None
    before = tree_state(repo)
    pipeline = Pipeline(services_for(repo, scripted_server))
    try:
        with pytest.raises(RunInterrupted) as stopped:
            await pipeline.run("scripted request")
    finally:
        await _close(pipeline)

    assert "no usable edit" in stopped.value.message
    [run_id] = [p.name for p in RunStore(repo).root.iterdir()]
    error = RunStore(repo).load(run_id).outcomes["e"]["error"]
    assert "the model produced no usable edit" in error and "outside the repository" in error
    tool_results = [m for r in _about("MARK-E", scripted_server.requests) for m in r.body["messages"]
                    if m.get("role") == "tool"]
    assert tool_results and "outside the repository" in tool_results[0]["content"]
    assert tree_state(repo) == before
    assert not (repo / ".aetherflow" / "etc").exists() and not (repo.parent / "etc").exists()
    if passwd is not None:
        assert Path("/etc/passwd").read_bytes() == passwd


# ---- provider outage ---------------------------------------------------------------------------------------


async def test_an_outage_of_every_model_ends_the_run_resumable_with_nothing_applied(repo, scripted_server):
    team = team_script(TWO_INDEPENDENT, EDITS)
    down = [True]

    def script(req: RecordedRequest) -> Reply | Fault:
        if down[0] and not req.body.get("response_format"):
            return Fault(status=500, message="provider outage")
        return team(req)

    scripted_server.script = script
    before = tree_state(repo)
    pipeline = Pipeline(services_for(repo, scripted_server))
    try:
        with pytest.raises(RunInterrupted) as stopped:
            await pipeline.run("scripted request")
    finally:
        await _close(pipeline)

    message = stopped.value.message
    assert "2 subtask(s) failed" in message and "aether run --resume" in message
    [run_id] = [p.name for p in RunStore(repo).root.iterdir()]
    state = RunStore(repo).load(run_id)
    assert state.status == "failed" and {o["status"] for o in state.outcomes.values()} == {"failed"}
    assert all("fast" in o["error"] or "strong" in o["error"] for o in state.outcomes.values())
    agent_models = {r.body["model"] for r in scripted_server.requests if "MARK-" in r.message_text()}
    assert agent_models == {"fast", "strong"}  # it fell back before giving up
    assert tree_state(repo) == before
    assert state.summary and "failed" in state.summary  # the plain summary, since the summary call failed too

    down[0] = False
    resumed = Pipeline(services_for(repo, scripted_server))
    try:
        result = await resumed.run("", resume_id=run_id)
    finally:
        await _close(resumed)
    assert result.status == "review" and sorted(result.changeset.paths()) == ["app.py", "util.py"]
    assert tree_state(repo) == before
    assert json.loads(json.dumps(result.model_dump(mode="json")))["run_id"] == run_id


async def test_an_outage_from_the_first_call_ends_the_run_on_record_and_resumable(repo, scripted_server):
    from aetherflow.errors import ProviderError

    down = [True]
    team = team_script(TWO_INDEPENDENT, EDITS)
    scripted_server.script = lambda req: Fault(status=500, message="provider outage") if down[0] else team(req)
    before = tree_state(repo)
    pipeline = Pipeline(services_for(repo, scripted_server))
    try:
        with pytest.raises(ProviderError, match="Every model failed"):
            await pipeline.run("scripted request")
    finally:
        await _close(pipeline)

    [run_id] = [p.name for p in RunStore(repo).root.iterdir()]
    state = RunStore(repo).load(run_id)
    assert state.status == "failed" and state.plan is None
    assert "Every model failed" in state.message and f"aether run --resume {run_id}" in state.message
    [row] = pipeline.services.ledger.query("SELECT status FROM runs WHERE run_id = ?", run_id)
    assert row["status"] == "failed"
    assert tree_state(repo) == before

    down[0] = False
    resumed = Pipeline(services_for(repo, scripted_server))
    try:
        result = await resumed.run("", resume_id=run_id)
    finally:
        await _close(resumed)
    assert result.status == "review" and sorted(result.changeset.paths()) == ["app.py", "util.py"]
