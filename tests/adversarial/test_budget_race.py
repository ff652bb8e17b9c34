"""Adversarial item 15: the budget under concurrency, with retries and fallbacks.

Ten subtasks run four at a time against a provider whose answers come after a seeded random delay, some after
a 429 or a 5xx (retried), some never from the cheap model (the subtask falls back to the pricier one). The per-run
budget is set so the run must stop partway. For every seed: the ledger's total for the run never exceeds the
budget, it equals what the gateway settled and what the run reported, no reservation is left open or was overrun,
every answer the provider gave is one ledger row, and the stop is clean: named, saved, resumable, nothing applied.
The resume, with a larger budget, does not run the finished subtasks again.
"""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

import pytest
from adversarial_support import assert_untouched, snapshot
from orchestrator.pipeline_support import plan_json, services_for, task

from aetherflow.errors import RunInterrupted
from aetherflow.events import Event, RunFinished
from aetherflow.orchestrator.pipeline import Pipeline, RunResult
from aetherflow.orchestrator.runstate import RunStore
from aetherflow.testing.script import Fault, RecordedRequest, Reply, ToolCallSpec
from aetherflow.testing.server import ScriptedServer

SUBTASKS = 10
CONCURRENCY = 4
BUDGET_USD = 0.30
# Completion tokens each agent reply reports: $0.006 on "fast", $0.045 on "strong" (the pricier fallback).
AGENT_COMPLETION_TOKENS = 3000
# Subtasks that "fast" never serves. Their fallbacks alone (about $0.09 each on "strong") plus the others (about
# $0.013 each on "fast") come to more than the budget, so every seed has to stop partway.
FAST_DOWN = 3
SEEDS = [11, 23, 47]


def _marker(n: int) -> str:
    return f"MARK-S{n:02d}"


def _plan() -> dict[str, Any]:
    specs = []
    for n in range(SUBTASKS):
        spec = task(f"s{n:02d}", f"{_marker(n)}: add helper {n}", task_type="module_generation")
        spec["fallback_strategy"] = ["next_agent", "fail"]  # coder on "fast", then the reasoner on "strong"
        specs.append(spec)
    return plan_json(specs)


class RacyProvider:
    """The scripted provider. Each subtask's n-th request draws from a generator seeded by (seed, subtask, n), so a
    seed fixes every delay and fault whatever order the threads serve them in. FAST_DOWN subtasks get nothing but
    500s from "fast" (so they fall back to "strong"); any other request fails with a 429 or a 503 one time in four
    (and is retried). `answered` counts the replies that carried a completion."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.plan = _plan()
        self.fast_down = set(random.Random(seed).sample(range(SUBTASKS), FAST_DOWN))
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self.answered = 0

    def __call__(self, req: RecordedRequest) -> Reply | Fault:
        messages = req.body.get("messages", [])
        if req.body.get("response_format"):
            return self._answer(Reply(json=self.plan))
        if messages and "Summarise" in str(messages[0].get("content")):
            return self._answer(Reply(text="Scripted summary."))
        number = next(n for n in range(SUBTASKS) if f"{_marker(n)}:" in req.message_text())
        rng = self._draw(_marker(number))
        delay = rng.uniform(0.0, 0.08)
        if req.body["model"] == "fast" and number in self.fast_down:
            return Fault(status=500, message="fast is down for this subtask")
        if rng.random() < 0.25:
            return Fault(status=rng.choice([429, 503]), retry_after=0.01, message="transient (seeded)")
        if messages[-1].get("role") == "tool":
            return self._answer(Reply(text=f"{_marker(number)} done", ttft_s=delay,
                                      completion_tokens=AGENT_COMPLETION_TOKENS))
        call = ToolCallSpec(name="create_file", arguments={
            "path": f"app/helper_{number}.py", "content": f"def helper_{number}():\n    return {number}\n"})
        return self._answer(Reply(tool_calls=[call], ttft_s=delay, completion_tokens=AGENT_COMPLETION_TOKENS))

    def _draw(self, marker: str) -> random.Random:
        with self._lock:
            count = self._counts.get(marker, 0)
            self._counts[marker] = count + 1
        return random.Random(f"{self.seed}:{marker}:{count}")

    def _answer(self, reply: Reply) -> Reply:
        with self._lock:
            self.answered += 1
        return reply


async def _run(pipeline: Pipeline, resume_id: str | None = None) -> tuple[RunResult | None, RunInterrupted | None]:
    try:
        return await pipeline.run("add ten helpers", resume_id=resume_id), None
    except RunInterrupted as exc:
        return None, exc
    finally:
        await pipeline.services.gateway.aclose()


@pytest.mark.parametrize("seed", SEEDS)
async def test_parallel_subtasks_with_retries_and_fallbacks_never_spend_past_the_budget(
    demo_repo: Path, home: Path, scripted_server: ScriptedServer, seed: int
) -> None:
    """The ledger's total for the run stays within the per-run budget and matches the gateway's and the run's own
    totals exactly, under parallel subtasks, retried calls and pricier fallbacks; the stop is reported cleanly."""
    provider = RacyProvider(seed)
    scripted_server.script = provider
    services = services_for(
        demo_repo, scripted_server, budget={"per_run_usd": BUDGET_USD}, cache={"enabled": False},
        gateway={"max_retries": 2, "backoff_initial_s": 0.005, "backoff_max_s": 0.05},
    )
    finished: list[RunFinished] = []

    def on_event(event: Event) -> None:
        if isinstance(event, RunFinished):
            finished.append(event)

    services.bus.subscribe(on_event)
    before = snapshot(demo_repo, [home])

    result, stopped = await _run(Pipeline(services, max_concurrency=CONCURRENCY))

    [run_id] = [p.name for p in RunStore(demo_repo).root.iterdir()]
    ledger = services.ledger
    assert ledger is not None
    total = ledger.total_cost_usd(run_id)
    budget = services.gateway.budget
    assert total <= BUDGET_USD + 1e-9, f"spent ${total:.6f} of a ${BUDGET_USD} budget"
    assert total == pytest.approx(budget.spent_usd, abs=1e-9), "the ledger and the gateway disagree"
    [event] = finished
    assert event.cost_usd == pytest.approx(total, abs=1e-9), "the reported total differs from the ledger"
    assert budget.reserved_usd == 0, "a reservation was left open"
    assert budget.overrun_usd == 0, "a call cost more than its reservation"
    ok_rows = int(ledger.scalar("SELECT COUNT(*) FROM calls WHERE run_id = ? AND status = 'ok'", run_id))
    assert ok_rows == provider.answered, "every answer the provider gave is exactly one ledger row"
    tasks_total = ledger.scalar("SELECT SUM(cost_usd) FROM tasks WHERE run_id = ?", run_id)
    assert tasks_total <= total + 1e-9

    state = RunStore(demo_repo).load(run_id)
    statuses = [o["status"] for o in state.outcomes.values()]
    budget_skips = [o for o in state.outcomes.values() if o["error"].startswith("budget reached")]
    assert len(statuses) == SUBTASKS
    assert budget_skips, f"the budget never stopped the run (seed {seed}): {statuses}"
    paid = ledger.scalar("SELECT COUNT(*) FROM calls WHERE run_id = ? AND status = 'ok' AND task_id IS NOT NULL",
                         run_id)
    assert paid > 0, f"no subtask call was made before the budget stop (seed {seed}): {statuses}"
    assert any(r.body["model"] == "strong" for r in scripted_server.completion_requests()
               if "MARK-S" in r.message_text()), "no subtask fell back to the pricier model"
    message = stopped.message if stopped is not None else result.message
    assert f"budget reached: {len(budget_skips)} subtask(s) not run" in message, message
    assert f"aether run --resume {run_id}" in message
    assert_untouched(before, demo_repo, [home])

    done = [task_id for task_id, o in state.outcomes.items() if o["status"] == "done"]
    asked = {task_id: _requests_of(scripted_server, task_id) for task_id in done}
    more = services_for(demo_repo, scripted_server, budget={"per_run_usd": 5.0}, cache={"enabled": False},
                        gateway={"max_retries": 2, "backoff_initial_s": 0.005, "backoff_max_s": 0.05})
    resumed, _ = await _run(Pipeline(more, max_concurrency=CONCURRENCY), resume_id=run_id)

    after = RunStore(demo_repo).load(run_id).outcomes
    assert {task_id: _requests_of(scripted_server, task_id) for task_id in done} == asked, "a done subtask ran again"
    assert all(after[task_id]["status"] == "done" for task_id in done)
    assert not [o for o in after.values() if o["error"].startswith("budget reached")]
    assert more.gateway.budget.spent_usd <= 5.0 and more.gateway.budget.reserved_usd == 0
    assert_untouched(before, demo_repo, [home])


def _requests_of(server: ScriptedServer, task_id: str) -> int:
    """How many requests the subtask `task_id` (s00..s09) made so far."""
    marker = f"MARK-S{task_id[1:]}:"
    return sum(1 for r in server.completion_requests() if marker in r.message_text())


async def test_a_fallback_the_budget_cannot_cover_is_a_resumable_budget_stop_not_a_model_failure(
    demo_repo: Path, home: Path, scripted_server: ScriptedServer
) -> None:
    """"fast" fails every time and the budget left cannot cover the pricier "strong": the subtask is skipped as a
    budget stop naming both (so the run says the budget, not the model, stopped it), "strong" is never called,
    the ledger stays within the budget, and the resume with more budget finishes through "strong"."""
    spec = task("s00", f"{_marker(0)}: add helper 0", task_type="module_generation")
    spec["fallback_strategy"] = ["next_agent", "fail"]
    plan = plan_json([spec])
    create = ToolCallSpec(name="create_file", arguments={"path": "app/helper_0.py", "content": "def helper_0():\n"
                                                                                           "    return 0\n"})

    def script(req: RecordedRequest) -> Reply | Fault:
        if req.body.get("response_format"):
            return Reply(json=plan)
        messages = req.body.get("messages", [])
        if "Summarise" in str(messages[0].get("content")):
            return Reply(text="Scripted summary.")
        if req.body["model"] == "fast":
            return Fault(status=500, message="fast is down")
        if messages[-1].get("role") == "tool":
            return Reply(text="helper done")
        return Reply(tool_calls=[create])

    scripted_server.script = script
    # The planner's worst case (2,000 tokens out on "strong", about $0.03) and a "fast" call fit in $0.10; a
    # "strong" call of the reasoner (8,192 tokens out, about $0.13) does not.
    tight = {"per_run_usd": 0.10}
    planner = {"orchestrator": {"max_output_tokens": 2000}}
    services = services_for(demo_repo, scripted_server, budget=tight, agents=planner)
    before = snapshot(demo_repo, [home])

    result, stopped = await _run(Pipeline(services))

    assert result is None and stopped is not None
    assert "budget reached: 1 subtask(s) not run" in stopped.message and "aether run --resume" in stopped.message
    [run_id] = [p.name for p in RunStore(demo_repo).root.iterdir()]
    error = RunStore(demo_repo).load(run_id).outcomes["s00"]["error"]
    assert error.startswith("budget reached: fast failed") and "its fallback strong could cost more than" in error
    assert not [r for r in scripted_server.completion_requests()
                if r.body["model"] == "strong" and "MARK-S00:" in r.message_text()]
    assert services.ledger is not None and services.ledger.total_cost_usd(run_id) <= 0.10
    assert_untouched(before, demo_repo, [home])

    more = services_for(demo_repo, scripted_server, budget={"per_run_usd": 1.0}, agents=planner)
    resumed, _ = await _run(Pipeline(more), resume_id=run_id)

    assert resumed is not None and resumed.status == "review", resumed and resumed.message
    assert resumed.outcomes["s00"].alias == "strong" and resumed.changeset is not None
    assert resumed.changeset.paths() == ["app/helper_0.py"]
    assert_untouched(before, demo_repo, [home])
