"""Adversarial item 13: a 429 storm and a 5xx storm.

Retries are bounded by gateway.max_retries and wait at least the provider's Retry-After (measured on the scripted
server's own request timestamps), the work falls back to the next model, and the run then stops cleanly: saved
and resumable, nothing applied (not even with `--yes`), the user's tree byte-identical, no tool side effect
repeated, and a resumed run that does not redo the subtasks that had finished.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from adversarial_support import assert_untouched, run_aether, snapshot, trust
from orchestrator.pipeline_support import plan_json, scripted_config_toml, services_for, task

from aetherflow.errors import RunInterrupted
from aetherflow.orchestrator.pipeline import Pipeline, RunResult
from aetherflow.orchestrator.runstate import RunStore
from aetherflow.testing.script import Fault, RecordedRequest, Reply, ToolCallSpec
from aetherflow.testing.server import ScriptedServer

RETRY_AFTER_S = 1.0
MAX_RETRIES = 2
ATTEMPTS = 1 + MAX_RETRIES
# backoff_max_s above the Retry-After, so the gateway waits as asked instead of falling back at once.
STORM_GATEWAY = {"max_retries": MAX_RETRIES, "backoff_initial_s": 0.01, "backoff_max_s": 2.0}
NEW_FILE = "app/audit.py"
NEW_TEXT = "def audit(event):\n    return {'event': event}\n"
SERVER_DOC = '"""A minimal WSGI application'
SERVER_EDIT = {"path": "app/server.py", "search": SERVER_DOC, "replace": '"""A small WSGI application'}
ENV = {"SCRIPTED_API_KEY": "test-key"}


# ---- the scripted team --------------------------------------------------------------------------------------


def _is_planner(req: RecordedRequest) -> bool:
    return bool(req.body.get("response_format"))


def _is_summary(req: RecordedRequest) -> bool:
    messages = req.body.get("messages", [])
    return bool(messages) and "Summarise" in str(messages[0].get("content"))


def _own(marker: str, req: RecordedRequest) -> bool:
    """The request belongs to the subtask whose description starts with `marker`."""
    return f"{marker}:" in req.message_text()


def _after_tool(req: RecordedRequest) -> bool:
    messages = req.body.get("messages", [])
    return bool(messages) and messages[-1].get("role") == "tool"


def _marker_check(marker_file: Path) -> str:
    """A check command that appends one line to `marker_file` (outside the repository) each time it runs."""
    code = f"open({str(marker_file)!r}, 'a').write('ran\\n')"
    return f'"{sys.executable}" -c "{code}"'


def _runs(marker_file: Path) -> int:
    return len(marker_file.read_text().splitlines()) if marker_file.exists() else 0


def _audit_task(depends_on: list[str] | None = None) -> dict[str, Any]:
    spec = task("b", "MARK-B: add an audit helper", task_type="module_generation", depends_on=depends_on)
    spec["fallback_strategy"] = ["next_agent", "fail"]  # coder on "fast", then the reasoner on "strong"
    return spec


class StormScript:
    """The scripted team. Subtask a (when planned) edits app/server.py and finishes. Subtask b creates app/audit.py
    and runs the marker check in one reply; from then on every request of b meets the storm, whichever model it
    goes to, until `calm()`. After the storm b finishes normally."""

    def __init__(self, plan: dict[str, Any], fault: Callable[[], Fault]) -> None:
        self.plan = plan
        self.fault = fault
        self._storming = threading.Event()
        self._calm = threading.Event()

    def calm(self) -> None:
        self._calm.set()

    def __call__(self, req: RecordedRequest) -> Reply | Fault:
        if _is_planner(req):
            return Reply(json=self.plan)
        if _is_summary(req):
            return Reply(text="Scripted summary.")
        if _own("MARK-A", req):
            if _after_tool(req):
                return Reply(text="MARK-A done")
            return Reply(tool_calls=[ToolCallSpec(name="edit_file", arguments=SERVER_EDIT)])
        if _own("MARK-B", req):
            return self._audit(req)
        return Fault(status=400, message="storm script: unknown request")

    def _audit(self, req: RecordedRequest) -> Reply | Fault:
        if self._storming.is_set() and not self._calm.is_set():
            return self.fault()
        if _after_tool(req):
            return Reply(text="MARK-B done")
        if not self._calm.is_set():
            self._storming.set()  # every later request of b is refused while the storm lasts
        return Reply(tool_calls=[
            ToolCallSpec(name="create_file", arguments={"path": NEW_FILE, "content": NEW_TEXT}),
            ToolCallSpec(name="run_check", arguments={"name": "marker"}),
        ])


def _tools_run(repo: Path, run_id: str) -> list[str]:
    """The tools the run executed, in order, from its JSON-lines trace."""
    trace = RunStore(repo).folder(run_id) / "trace.jsonl"
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    return [e["name"] for e in events if e.get("kind") == "tool_executed"]


def _requests(server: ScriptedServer, marker: str) -> list[RecordedRequest]:
    return [r for r in server.completion_requests() if _own(marker, r)]


def _planner_calls(server: ScriptedServer) -> int:
    return sum(1 for r in server.completion_requests() if _is_planner(r))


async def _run(pipeline: Pipeline, resume_id: str | None = None) -> RunResult:
    try:
        return await pipeline.run("add an audit helper and reword the server docstring", resume_id=resume_id)
    finally:
        await pipeline.services.gateway.aclose()


# ---- a 429 storm, in process --------------------------------------------------------------------------------


async def test_a_429_storm_waits_as_asked_falls_back_and_stops_resumable_without_repeating_a_side_effect(
    demo_repo: Path, home: Path, scripted_server: ScriptedServer, tmp_path: Path
) -> None:
    """Every request of subtask b is a 429 with Retry-After after its first reply: each model is tried exactly
    1 + max_retries times, never sooner than Retry-After, then the stronger model; b stops with its created file
    taken back and its check run once, a finishes, and the resume redoes b alone."""
    marker = tmp_path / "check-runs.txt"
    # b after a: a's calls to "fast" never interleave with the storm (whose failures open fast's circuit breaker).
    plan = plan_json([task("a", "MARK-A: reword the server docstring"), _audit_task(depends_on=["a"])])
    script = StormScript(plan, lambda: Fault(status=429, retry_after=RETRY_AFTER_S, message="rate limited (storm)"))
    scripted_server.script = script
    overrides = {"gateway": STORM_GATEWAY, "checks": {"commands": {"marker": _marker_check(marker)}}}
    before = snapshot(demo_repo, [home])

    result = await _run(Pipeline(services_for(demo_repo, scripted_server, **overrides)))

    first, *storm = _requests(scripted_server, "MARK-B")
    assert first.body["model"] == "fast" and not _after_tool(first)
    assert [r.body["model"] for r in storm] == ["fast"] * ATTEMPTS + ["strong"] * ATTEMPTS
    for model in ("fast", "strong"):
        times = [r.ts for r in storm if r.body["model"] == model]
        gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
        assert all(gap >= RETRY_AFTER_S for gap in gaps), f"{model} retried sooner than Retry-After: {gaps}"
    # The check ran once as b's tool call and once as the run's final validation: the retries repeated neither.
    assert _runs(marker) == 2
    assert _tools_run(demo_repo, result.run_id) == ["edit_file", "create_file", "run_check"]

    outcome_b = result.outcomes["b"]
    assert outcome_b.status == "failed" and "HTTP 429" in outcome_b.error
    assert f"after {ATTEMPTS} attempts" in outcome_b.error
    assert f"its unfinished changes to {NEW_FILE} were taken back" in outcome_b.error
    assert result.outcomes["a"].status == "done"
    assert result.changeset is not None and result.changeset.paths() == ["app/server.py"]
    assert f"aether run --resume {result.run_id}" in result.message and "1 subtask(s) failed" in result.message
    saved = RunStore(demo_repo).load(result.run_id)
    assert saved.outcomes["b"]["status"] == "failed" and saved.outcomes["a"]["status"] == "done"
    assert_untouched(before, demo_repo, [home])

    script.calm()
    a_requests, planner_calls = len(_requests(scripted_server, "MARK-A")), _planner_calls(scripted_server)
    resumed = await _run(Pipeline(services_for(demo_repo, scripted_server, **overrides)), resume_id=result.run_id)

    assert resumed.status == "review", resumed.message
    assert len(_requests(scripted_server, "MARK-A")) == a_requests, "the finished subtask ran again"
    assert _planner_calls(scripted_server) == planner_calls, "the plan was made again"
    assert _runs(marker) == 4  # b's new attempt ran its check once, and the final validation once
    assert resumed.changeset is not None and resumed.changeset.paths() == ["app/audit.py", "app/server.py"]
    assert resumed.changeset.get(NEW_FILE).new_text == NEW_TEXT
    assert_untouched(before, demo_repo, [home])


# ---- a 5xx storm on parallel subtasks, in process -----------------------------------------------------------

PARALLEL = 4


def _parallel_plan() -> dict[str, Any]:
    specs = []
    for n in range(PARALLEL):
        spec = task(f"t{n}", f"MARK-T{n}: add helper number {n}", task_type="module_generation")
        spec["fallback_strategy"] = ["next_agent", "fail"]
        specs.append(spec)
    return plan_json(specs)


async def test_a_5xx_storm_on_parallel_subtasks_is_bounded_by_retries_and_breakers_then_resumes(
    demo_repo: Path, home: Path, scripted_server: ScriptedServer
) -> None:
    """Every agent request gets a 5xx while four subtasks run at once: no model is asked more than
    subtasks x (1 + max_retries) times (the shared circuit breaker cuts that further), every subtask fails
    naming the cause, the run stops resumable with nothing applied, and the resume finishes all four."""
    plan = _parallel_plan()
    storm = [True]
    statuses = iter([500, 502, 503, 504] * 100)

    def script(req: RecordedRequest) -> Reply | Fault:
        if _is_planner(req):
            return Reply(json=plan)
        if _is_summary(req):
            return Reply(text="Scripted summary.")
        if storm[0]:
            return Fault(status=next(statuses), message="upstream unavailable (storm)")
        if _after_tool(req):
            return Reply(text="helper done")
        number = next(n for n in range(PARALLEL) if _own(f"MARK-T{n}", req))
        content = f"def helper_{number}():\n    return {number}\n"
        return Reply(tool_calls=[ToolCallSpec(name="create_file",
                                              arguments={"path": f"app/helper_{number}.py", "content": content})])

    scripted_server.script = script
    before = snapshot(demo_repo, [home])
    pipeline = Pipeline(services_for(demo_repo, scripted_server, gateway={"max_retries": MAX_RETRIES}))

    with pytest.raises(RunInterrupted) as stopped:
        await _run(pipeline)

    agent_requests = [r for r in scripted_server.completion_requests() if "MARK-T" in r.message_text()]
    for model in ("fast", "strong"):
        count = sum(1 for r in agent_requests if r.body["model"] == model)
        assert 0 < count <= PARALLEL * ATTEMPTS, f"{model} was asked {count} times"
    assert f"{PARALLEL} subtask(s) failed" in stopped.value.message and "aether run --resume" in stopped.value.message
    [run_id] = [p.name for p in RunStore(demo_repo).root.iterdir()]
    state = RunStore(demo_repo).load(run_id)
    assert state.status == "failed"
    for outcome in state.outcomes.values():
        assert outcome["status"] == "failed"
        assert "HTTP 50" in outcome["error"] or "circuit open" in outcome["error"], outcome["error"]
    assert_untouched(before, demo_repo, [home])

    storm[0] = False
    resumed = await _run(Pipeline(services_for(demo_repo, scripted_server)), resume_id=run_id)

    assert resumed.status == "review", resumed.message
    assert resumed.changeset is not None
    assert resumed.changeset.paths() == [f"app/helper_{n}.py" for n in range(PARALLEL)]
    assert_untouched(before, demo_repo, [home])


# ---- the command line: --yes applies nothing of a stopped subtask --------------------------------------------


def test_aether_run_yes_in_a_429_storm_exits_1_applies_nothing_and_the_resume_applies_the_finished_work(
    demo_repo: Path, home: Path, scripted_server: ScriptedServer, tmp_path: Path
) -> None:
    """`aether run --yes` whose only subtask meets a 429 storm after creating a file: exit 1 with the cause and
    the resume command, the created file not applied; `aether run --resume ID --yes` after the storm applies
    exactly that file and nothing else."""
    marker = tmp_path / "check-runs.txt"
    script = StormScript(plan_json([_audit_task()]),
                         lambda: Fault(status=429, retry_after=RETRY_AFTER_S, message="rate limited (storm)"))
    scripted_server.script = script
    toml = scripted_config_toml(scripted_server, gateway=STORM_GATEWAY,
                                checks={"commands": {"marker": _marker_check(marker)}})
    (demo_repo / "aetherflow.toml").write_text(toml)
    trust(demo_repo)
    before = snapshot(demo_repo, [home])

    stopped = run_aether(demo_repo, "run", "add an audit helper", "--yes", "--no-tui", env=ENV)

    assert stopped.returncode == 1, stopped.stdout + stopped.stderr
    assert "HTTP 429" in stopped.stderr and "Traceback" not in stopped.stderr
    assert "aether run --resume " in stopped.stderr
    assert_untouched(before, demo_repo, [home])
    run_id = stopped.stderr.split("aether run --resume ", 1)[1].split("`", 1)[0].strip()
    # The checks on the base tree (one editing subtask is checked against them), b's tool call, then the final
    # validation; no retry repeated any of them.
    assert _runs(marker) == 1 + 1 + 1

    script.calm()
    resumed = run_aether(demo_repo, "run", "--resume", run_id, "--yes", "--no-tui", env=ENV)

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    after = snapshot(demo_repo, [home])
    assert after.files == {**before.files, NEW_FILE: NEW_TEXT.encode()}
    assert set(after.status.splitlines()) == {*before.status.splitlines(), f"?? {NEW_FILE}"}
    assert (after.staged, after.staged_diff, after.head) == (before.staged, before.staged_diff, before.head)
    assert after.outside == before.outside
