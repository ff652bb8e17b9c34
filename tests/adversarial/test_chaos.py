"""Issue 7, the chaos model: seeded random runs of the whole product against a server answering at random.

Every run (chaos_support.ChaosRunner) is the real Pipeline against `aetherflow.testing.chaos.ChaosScript` on a fresh
copy of examples/demo-app holding the user's own changes, followed by accept-all (`--yes`), reject, or accept and
undo; chaos_checks.py lists the invariants checked after each one. The normal run does QUICK_SEEDS seeds;
`pytest --chaos-runs 500` (what CI runs; add `-m chaos` for this test alone) does the full count from
`--chaos-seed-start` and prints the figures; bench/bench_chaos.py does the same outside pytest.

The tests below the chaos runs prove the generator is reproducible and fits its replies to the request, and that
each invariant check does fail when its invariant is broken (a check that cannot fail proves nothing).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from adversarial_support import assert_untouched, fake_home, git, snapshot
from chaos_checks import Evidence, check_run, outside_state, protected_state
from chaos_support import SIBLING_CANARY, ChaosRunner, RunReport, summarize

from aetherflow import paths
from aetherflow.errors import StructuredOutputError
from aetherflow.events import CallFinished
from aetherflow.llm.budget import Budget
from aetherflow.llm.types import Usage
from aetherflow.orchestrator.pipeline import Pipeline
from aetherflow.services import Services
from aetherflow.testing.chaos import Billed, ChaosScript, ChaosWorld
from aetherflow.testing.chaos_replies import HOSTILE_MARK
from aetherflow.testing.script import Fault, RecordedRequest, Reply, ToolCallSpec
from aetherflow.testing.server import ScriptedServer
from aetherflow.testing.settings import scripted_environ, scripted_settings

QUICK_SEEDS = 20
MIN_FULL_RUNS = 500


def _chaos(base: Path, seeds: range) -> tuple[list[RunReport], float]:
    started = time.monotonic()
    with ScriptedServer() as server, ChaosRunner(base, server) as runner:
        reports = [runner.run(seed) for seed in seeds]
    return reports, time.monotonic() - started


def test_chaos_runs_crash_nothing_leak_nothing_and_lose_no_user_byte(tmp_path: Path) -> None:
    """A handful of seeds: no crash, no write or read outside, no lost user byte, a ledger matching the calls."""
    reports, wall_s = _chaos(tmp_path / "chaos", range(QUICK_SEEDS))
    figures = summarize(reports, wall_s)
    assert all(r.ok for r in reports), figures
    # The runs must reach every stage, or the invariants were checked on nothing.
    outcomes = " ".join(r.outcome for r in reports)
    assert "applied" in outcomes and "stopped" in outcomes, figures


@pytest.mark.chaos
def test_chaos_full_count_keeps_every_invariant(tmp_path: Path, request: pytest.FixtureRequest,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """The full count, `--chaos-runs N` seeds from `--chaos-seed-start` (CI: 500 from 0); prints the figures."""
    runs, start = request.config.getoption("--chaos-runs"), request.config.getoption("--chaos-seed-start")
    if runs <= 0:
        pytest.skip(f"the full chaos count runs with `pytest --chaos-runs {MIN_FULL_RUNS}` (or bench/bench_chaos.py)")
    reports, wall_s = _chaos(tmp_path / "chaos", range(start, start + runs))
    figures = summarize(reports, wall_s)
    with capsys.disabled():  # the figures are the point of this run: shown even without -s
        print("\n" + figures)
    assert all(r.ok for r in reports), figures


# ---- the generator --------------------------------------------------------------------------------------------

WORLD = ChaosWorld(files={"app/auth.py": "def login(user):\n    return user\n", "README.md": "# demo\n"},
                   outside=["/tmp/outside/.bashrc"], links=["linked-home"])
PLAN_SCHEMA = {"type": "json_schema", "json_schema": {"name": "Plan", "schema": {}}}
TOOLS = [{"type": "function", "function": {"name": name, "parameters": {}}}
         for name in ("read_file", "edit_file", "create_file")]


def _request(*, task: str | None = None, json_mode: bool = False, tools: bool = False, summary: bool = False,
             repair: bool = False) -> RecordedRequest:
    system = "Summarise this completed run." if summary else "You are an agent."
    messages = [{"role": "system", "content": system},
                {"role": "user", "content": f"# Your task ({task}, local_refactor)\nDo it." if task else "Plan it."}]
    if repair:
        messages.append({"role": "user", "content": "Your reply does not match the required JSON schema for Plan."})
    body: dict = {"model": "fast", "messages": messages, "stream": True, "max_tokens": 100}
    if json_mode:
        body["response_format"] = PLAN_SCHEMA
    if tools:
        body["tools"] = TOOLS
    return RecordedRequest(method="POST", path="/v1/chat/completions", headers={}, body=body,
                           raw_body=json.dumps(body).encode(), ts=0.0)


def _answers(script: ChaosScript, requests: list[RecordedRequest]) -> list[Reply | Fault]:
    return [script(r) for r in requests]


def test_the_same_seed_answers_the_same_requests_identically() -> None:
    """Reproducible: one seed, one sequence of requests, one sequence of replies; another seed differs."""
    requests = [_request(json_mode=True), _request(task="a", tools=True), _request(task="b"),
                _request(summary=True)] * 15
    first = _answers(ChaosScript(7, WORLD), requests)
    assert first == _answers(ChaosScript(7, WORLD), requests)
    assert first != _answers(ChaosScript(8, WORLD), requests)


def test_a_lane_gets_the_same_replies_however_parallel_subtasks_interleave() -> None:
    """Each subtask draws from its own stream, so the scheduler's interleaving does not change its replies."""
    a, b = [_request(task="a", tools=True)] * 12, [_request(task="b", tools=True)] * 12
    interleaved = _answers(ChaosScript(3, WORLD), [r for pair in zip(a, b, strict=True) for r in pair])
    sequential = _answers(ChaosScript(3, WORLD), a + b)
    assert interleaved[0::2] == sequential[:12] and interleaved[1::2] == sequential[12:]


def test_replies_fit_the_request_and_usage_is_billed_within_max_tokens() -> None:
    """Without tools offered there are no tool calls (but for the deliberate, rare `plan_tool_call` of a planner);
    JSON mode gets plans, agents with tools get tool calls; complete replies carry plausible usage."""
    script = ChaosScript(11, WORLD, fault_rate=0.2, huge_chars=50_000)
    planner_tool_calls = 0
    for index in range(300):
        plan, text, summary = _answers(script, [_request(json_mode=True, repair=index % 2 == 0), _request(task="t"),
                                                _request(summary=True)])
        assert all(not a.tool_calls for a in (text, summary) if isinstance(a, Reply))
        planner_tool_calls += isinstance(plan, Reply) and bool(plan.tool_calls)
        script(_request(task="u", tools=True))
    assert planner_tool_calls == script.tally.kinds["plan_tool_call"] > 0
    assert {"plan_valid", "plan_broken_graph", "plan_invalid_json", "text_blocks", "tool_edit",
            "tool_hostile_write", "tool_bad_arguments", "fault_429", "fault_truncated"} <= set(script.tally.kinds)
    assert script.tally.billed and all(0 < b.completion_tokens <= 100 for b in script.tally.billed)
    assert any(b.repair for b in script.tally.billed) and any(not b.repair for b in script.tally.billed)


# ---- the invariant checks fail when they must ----------------------------------------------------------------


@pytest.fixture
def evidence(tmp_path: Path, demo_repo: Path) -> Evidence:
    """A run's evidence taken on the demo repository before anything happened (nothing done: every check passes)."""
    home = fake_home(tmp_path / "victim-home")
    (tmp_path / "sibling").mkdir()
    (tmp_path / "sibling" / "secret.txt").write_text(SIBLING_CANARY)
    e = Evidence(repo=demo_repo, parent=tmp_path, before=snapshot(demo_repo),
                 outside_before=outside_state(tmp_path, demo_repo), protected_before=protected_state(demo_repo),
                 budget_usd=0.01, canaries=[b"AAAAfakekeymaterial", SIBLING_CANARY.encode()])
    assert home.is_dir() and check_run(e) == []
    return e


def _kinds(e: Evidence) -> set[str]:
    return {kind for kind, _ in check_run(e)}


def test_a_write_beside_the_repository_is_caught(evidence: Evidence) -> None:
    """A changed file in the fake home and a new file in the run's folder are both outside writes."""
    (evidence.parent / "victim-home" / ".bashrc").write_text("pwned\n")
    (evidence.parent / "escape.txt").write_text("x")
    assert _kinds(evidence) == {"outside_write"}


def test_a_changed_user_file_and_a_moved_index_are_caught(evidence: Evidence) -> None:
    """Lost user bytes: an unaccepted change to the user's unstaged file, then a change to the index."""
    (evidence.repo / "app" / "auth.py").write_text("gone\n")
    assert _kinds(evidence) == {"user_bytes"}
    (evidence.repo / "app" / "auth.py").write_bytes(evidence.before.files["app/auth.py"])
    git(evidence.repo, "add", "app/auth.py")
    assert _kinds(evidence) == {"user_bytes"}


def test_a_hostile_write_that_landed_anywhere_but_the_run_records_is_caught(evidence: Evidence) -> None:
    """The marked content of a hostile write is allowed in the run's trace, and caught in the state folder."""
    records = paths.ensure_state_dir(evidence.repo) / "runs" / "r1"
    records.mkdir(parents=True)
    (records / "trace.jsonl").write_text(json.dumps({"arguments": HOSTILE_MARK}))
    assert check_run(evidence) == []
    (evidence.repo / ".aetherflow" / "chaos-escape.txt").write_text(HOSTILE_MARK)
    assert _kinds(evidence) == {"hostile_write"}


def test_protected_files_temp_files_and_pending_journals_are_caught(evidence: Evidence) -> None:
    """A changed .git/config, a leftover temp file and a pending journal each fail the run."""
    with (evidence.repo / ".git" / "config").open("a") as out:
        out.write("[core]\n\thooksPath = /tmp/evil\n")
    assert _kinds(evidence) == {"protected_write"}
    evidence.protected_before = protected_state(evidence.repo)
    (evidence.repo / "app" / ".auth.py.aether-tx1.tmp").write_text("half")
    journal = evidence.repo / ".aetherflow" / "journal"
    journal.mkdir(parents=True)
    (journal / "tx1.json").write_text(json.dumps({"state": "pending"}))
    (evidence.parent / "tmp").mkdir()
    (evidence.parent / "tmp" / "tmpab12cd").write_text("left behind")
    problems = check_run(evidence)
    # The apply's temp file also sits in the user's tree, where it is a new, unaccepted file.
    assert sorted(kind for kind, _ in problems if kind != "user_bytes") == ["temp_leftover"] * 3, problems


def test_a_ledger_that_does_not_match_the_replies_sent_is_caught(evidence: Evidence) -> None:
    """Costs that differ from the server's, a call without its row, a leaked canary and a passed budget."""
    evidence.tally.billed.append(Billed("fast", 1000, 500, False))  # $0.002 at the scripted fast price
    event = CallFinished(call_id="c1", alias="fast", model_id="openai/fast", usage=Usage(), cost_usd=0.002,
                         latency_s=0.1, run_id="r1")
    evidence.events = [event]
    evidence.ledger_rows = [{"call_id": "c1", "run_id": "r1", "status": "ok", "cost_usd": 0.002}]
    assert check_run(evidence) == []
    evidence.ledger_rows[0]["cost_usd"] = 0.003
    assert _kinds(evidence) == {"ledger"}
    evidence.ledger_rows[0]["cost_usd"] = 0.002
    evidence.events = []
    assert _kinds(evidence) == {"ledger"}
    evidence.events = [event]
    evidence.requests = [b'{"content": "AAAAfakekeymaterial"}']
    assert _kinds(evidence) == {"outside_read"}
    evidence.requests, evidence.budget_usd = [], 0.001
    assert _kinds(evidence) == {"budget"}


# ---- bugs the chaos run found ---------------------------------------------------------------------------------


def test_an_unlimited_budget_flags_no_overrun(caplog: pytest.LogCaptureFixture) -> None:
    """Without a limit the gateway holds $0 by design; every call used to warn on stderr that 'the estimate was
    too low' and count an overrun. Nothing is estimated without a limit, so nothing is flagged."""
    budget = Budget(None)
    budget.settle(budget.reserve(0.0, "unbounded call"), 0.25)
    assert budget.spent_usd == 0.25 and budget.overrun_usd == 0
    assert "estimate was too low" not in caplog.text


def test_a_plan_answered_with_an_unoffered_tool_call_stops_the_run_with_a_message(
        demo_repo: Path, scripted_server: ScriptedServer) -> None:
    """The planner offers no tool; a model calling one anyway (found by the chaos run) used to crash `aether run`
    with a TypeError: it is now repaired like any reply that is not a plan, then refused with the reason."""
    scripted_server.script = lambda request: Reply(
        tool_calls=[ToolCallSpec(name="json_tool_call", arguments={"plan": {}})])
    before = snapshot(demo_repo)
    services = Services(scripted_settings(scripted_server, cache={"enabled": False}), demo_repo,
                        environ=scripted_environ())

    with pytest.raises(StructuredOutputError) as stopped:
        asyncio.run(Pipeline(services).run("add a logout_all function"))

    assert "did not match Plan, even after a repair round" in stopped.value.message
    assert stopped.value.hint and "json_schema" in stopped.value.hint
    assert_untouched(before, demo_repo)
