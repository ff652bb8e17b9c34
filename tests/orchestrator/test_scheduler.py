"""The scheduler with fake RunTask functions: pure asyncio, with Event barriers proving overlap (a scheduler that
serialised the subtasks would dead-lock on them and fail the test's time guard, never pass by luck)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from aetherflow.config.loader import load_settings
from aetherflow.config.models import Settings
from aetherflow.errors import BudgetExceededError, PlanError, ProviderError
from aetherflow.events import Event, EventBus, TaskStateChanged
from aetherflow.orchestrator.plan import Plan, TaskSpec
from aetherflow.orchestrator.router import RouteDecision
from aetherflow.orchestrator.scheduler import Scheduler, TaskOutcome

GUARD_S = 5.0
SHAPE = {  # 1-4-4-2-1
    "a": [],
    "b1": ["a"], "b2": ["a"], "b3": ["a"], "b4": ["a"],
    "c1": ["b1"], "c2": ["b2"], "c3": ["b3", "b4"], "c4": ["b4"],
    "d1": ["c1", "c2"], "d2": ["c3", "c4"],
    "e": ["d1", "d2"],
}


def make_plan(shape: dict[str, list[str]], **fields: Any) -> Plan:
    tasks = [TaskSpec(id=i, type="module_generation", description=f"task {i}", depends_on=d, **fields)
             for i, d in shape.items()]
    return Plan(summary="test plan", tasks=tasks)


class FakeRouter:
    """Routes every task to `aliases[task_id]` (default "deepseek"); escalates along `ladder`."""

    def __init__(self, aliases: dict[str, str] | None = None, ladder: list[str] | None = None,
                 route_error: Exception | None = None) -> None:
        self.aliases = aliases or {}
        self.ladder = ladder or ["deepseek", "sonnet"]
        self.route_error = route_error

    def route(self, task: TaskSpec, remaining_budget_usd: float | None) -> RouteDecision:
        if self.route_error is not None:
            raise self.route_error
        alias = self.aliases.get(task.id, self.ladder[0])
        return RouteDecision(task_id=task.id, agent="coder", alias=alias, chain=[alias], reason="fake")

    def escalate(self, decision: RouteDecision, task: TaskSpec,
                 remaining_budget_usd: float | None = None) -> RouteDecision | None:
        index = self.ladder.index(decision.alias) + 1 if decision.alias in self.ladder else len(self.ladder)
        if index >= len(self.ladder):
            return None
        alias = self.ladder[index]
        return RouteDecision(task_id=task.id, agent="reasoner", alias=alias, chain=[alias], reason="up")


class Recorder:
    """Events and outcomes, in order."""

    def __init__(self, bus: EventBus) -> None:
        self.events: list[Event] = []
        self.outcomes: list[TaskOutcome] = []
        bus.subscribe(self.events.append)

    def states(self, task_id: str) -> list[str]:
        return [e.state for e in self.events if isinstance(e, TaskStateChanged) and e.task_id == task_id]

    def state_events(self) -> list[TaskStateChanged]:
        return [e for e in self.events if isinstance(e, TaskStateChanged)]


Fn = Callable[[TaskSpec, RouteDecision, dict[str, TaskOutcome], int], Awaitable[TaskOutcome]]


def settings() -> Settings:
    return load_settings(repo_root=None, environ={})


def scheduler(run_task: Fn, router: FakeRouter | None = None, **options: Any) -> tuple[Scheduler, Recorder]:
    bus = EventBus()
    recorder = Recorder(bus)
    options.setdefault("task_timeout_s", 10.0)
    options.setdefault("remaining_budget", lambda: None)
    options.setdefault("on_outcome", recorder.outcomes.append)
    return Scheduler(settings(), bus, router or FakeRouter(), run_task, **options), recorder


async def run(sched: Scheduler, plan: Plan, done: dict[str, TaskOutcome] | None = None) -> dict[str, TaskOutcome]:
    async with asyncio.timeout(GUARD_S):
        return await sched.run(plan, "run-1", done)


def done_outcome(task: TaskSpec, output: str) -> TaskOutcome:
    return TaskOutcome(task_id=task.id, status="done", output=output)


# ---- parallelism ------------------------------------------------------------------------------------------


class LayerBarrier:
    """Each task of a group waits until every task of its group has started."""

    def __init__(self, groups: list[list[str]]) -> None:
        self.group_of = {t: tuple(g) for g in groups for t in g}
        self.started: dict[tuple[str, ...], set[str]] = {tuple(g): set() for g in groups}
        self.events = {tuple(g): asyncio.Event() for g in groups}

    async def arrive(self, task_id: str) -> None:
        group = self.group_of.get(task_id)
        if group is None:
            return
        self.started[group].add(task_id)
        if len(self.started[group]) == len(group):
            self.events[group].set()
        await self.events[group].wait()


async def test_1_4_4_2_1_plan_overlaps_independent_tasks_and_passes_outputs_down() -> None:
    plan = make_plan(SHAPE)
    barrier = LayerBarrier([["b1", "b2", "b3", "b4"], ["c1", "c2", "c3", "c4"], ["d1", "d2"]])
    times: dict[str, tuple[float, float]] = {}
    received: dict[str, dict[str, str]] = {}

    async def run_task(task: TaskSpec, route: RouteDecision, deps: dict[str, TaskOutcome], attempt: int) -> TaskOutcome:
        start = time.perf_counter()
        received[task.id] = {k: v.output for k, v in deps.items()}
        await barrier.arrive(task.id)
        times[task.id] = (start, time.perf_counter())
        return done_outcome(task, f"out-{task.id}")

    sched, recorder = scheduler(run_task, max_concurrency=4)
    outcomes = await run(sched, plan)

    assert {o.status for o in outcomes.values()} == {"done"} and list(outcomes) == list(SHAPE)
    for task_id, deps in SHAPE.items():
        assert received[task_id] == {d: f"out-{d}" for d in deps}
        for dep in deps:
            assert times[task_id][0] >= times[dep][1], f"{task_id} started before {dep} ended"
    for group in (["b1", "b2", "b3", "b4"], ["c1", "c2", "c3", "c4"], ["d1", "d2"]):
        assert max(times[t][0] for t in group) < min(times[t][1] for t in group), f"{group} did not overlap"
    assert [o.task_id for o in recorder.outcomes][0] == "a" and recorder.outcomes[-1].task_id == "e"
    first = outcomes["b1"]
    assert (first.agent, first.alias, first.attempts) == ("coder", "deepseek", 1)
    assert first.started_at is not None and first.ended_at is not None and first.started_at <= first.ended_at
    assert recorder.states("c3") == ["pending", "running", "done"]


async def test_a_task_starts_when_its_own_deps_finish_not_its_layer() -> None:
    plan = make_plan({"slow": [], "fast": [], "after_fast": ["fast"]})
    after_fast_started = asyncio.Event()
    order: list[str] = []

    async def run_task(task: TaskSpec, route: RouteDecision, deps: dict[str, TaskOutcome], attempt: int) -> TaskOutcome:
        order.append(f"start {task.id}")
        if task.id == "slow":
            await after_fast_started.wait()  # a layer barrier would never let after_fast start: dead-lock
        if task.id == "after_fast":
            after_fast_started.set()
        order.append(f"end {task.id}")
        return done_outcome(task, task.id)

    sched, _ = scheduler(run_task)
    outcomes = await run(sched, plan)
    assert {o.status for o in outcomes.values()} == {"done"}
    assert order.index("start after_fast") < order.index("end slow")


class ConcurrencyProbe:
    """Counts concurrent RunTask calls; the first `hold` callers wait for each other so the peak is observable."""

    def __init__(self, hold: int) -> None:
        self.active = 0
        self.peak = 0
        self.hold = hold
        self.gate = asyncio.Event()

    async def __call__(
        self, task: TaskSpec, route: RouteDecision, deps: dict[str, TaskOutcome], attempt: int
    ) -> TaskOutcome:
        self.active += 1
        self.peak = max(self.peak, self.active)
        if self.active >= self.hold:
            self.gate.set()
        await self.gate.wait()
        for _ in range(5):  # give an over-eager scheduler every chance to start one more
            await asyncio.sleep(0)
        self.active -= 1
        return done_outcome(task, task.id)


async def test_per_provider_limit_is_respected() -> None:
    plan = make_plan({f"t{i}": [] for i in range(6)})
    probe = ConcurrencyProbe(hold=2)
    sched, _ = scheduler(probe, max_concurrency=6, per_provider=2)
    outcomes = await run(sched, plan)
    assert len([o for o in outcomes.values() if o.status == "done"]) == 6
    assert probe.peak == 2


async def test_default_per_provider_limit_is_the_models_max_concurrency() -> None:
    plan = make_plan({f"t{i}": [] for i in range(4)})
    probe = ConcurrencyProbe(hold=1)
    # The local model's max_concurrency is 1 in the defaults.
    sched, _ = scheduler(probe, FakeRouter(aliases={f"t{i}": "local" for i in range(4)}), max_concurrency=4)
    await run(sched, plan)
    assert probe.peak == 1


async def test_global_limit_spans_providers() -> None:
    aliases = {"t0": "deepseek", "t1": "sonnet", "t2": "codestral", "t3": "gemini-flash", "t4": "groq-llama"}
    plan = make_plan({t: [] for t in aliases})
    probe = ConcurrencyProbe(hold=3)
    sched, _ = scheduler(probe, FakeRouter(aliases=aliases), max_concurrency=3)
    await run(sched, plan)
    assert probe.peak == 3


# ---- failures ---------------------------------------------------------------------------------------------


async def test_failure_policy_retries_escalates_simplifies_in_order() -> None:
    plan = make_plan({"x": []})
    calls: list[tuple[int, str, bool]] = []

    async def run_task(task: TaskSpec, route: RouteDecision, deps: dict[str, TaskOutcome], attempt: int) -> TaskOutcome:
        calls.append((attempt, route.alias, "smallest, safest change" in task.description))
        if attempt < 4:
            raise ProviderError(f"failure {attempt}")
        return done_outcome(task, "finally")

    sched, recorder = scheduler(run_task)
    outcome = (await run(sched, plan))["x"]

    assert calls == [(1, "deepseek", False), (2, "deepseek", False), (3, "sonnet", False), (4, "sonnet", True)]
    assert (outcome.status, outcome.output, outcome.attempts, outcome.agent, outcome.alias) == (
        "done", "finally", 4, "reasoner", "sonnet")
    retries = [e for e in recorder.state_events() if e.state == "retrying"]
    assert [(e.attempt, e.alias, e.detail) for e in retries] == [
        (2, "deepseek", "retry_same_agent: failure 1"),
        (3, "sonnet", "next_agent: failure 2"),
        (4, "sonnet", "simplify_and_retry: failure 3"),
    ]
    assert recorder.states("x") == ["pending", "running", "retrying", "running", "retrying", "running",
                                    "retrying", "running", "done"]


async def test_exhausted_policy_fails_with_the_last_error_and_skips_dependents() -> None:
    plan = make_plan({"a": [], "b": ["a"], "c": ["b"], "free": []})
    attempts: list[int] = []

    async def run_task(task: TaskSpec, route: RouteDecision, deps: dict[str, TaskOutcome], attempt: int) -> TaskOutcome:
        if task.id == "a":
            attempts.append(attempt)
            return TaskOutcome(task_id=task.id, status="failed", error=f"no usable edit ({attempt})", cost_usd=0.25)
        return done_outcome(task, task.id)

    sched, recorder = scheduler(run_task, FakeRouter(ladder=["deepseek"]))
    outcomes = await run(sched, plan)

    # next_agent has nowhere to go, so it is passed over: 1 try + retry + simplify, then "fail".
    assert attempts == [1, 2, 3]
    assert (outcomes["a"].status, outcomes["a"].error, outcomes["a"].attempts) == ("failed", "no usable edit (3)", 3)
    assert outcomes["a"].cost_usd == pytest.approx(0.75)
    assert (outcomes["b"].status, outcomes["b"].error) == ("skipped", "dependency 'a' failed")
    assert (outcomes["c"].status, outcomes["c"].error) == ("skipped", "dependency 'b' was skipped")
    assert outcomes["free"].status == "done"
    skipped = [e for e in recorder.state_events() if e.state == "skipped"]
    assert [(e.task_id, e.detail) for e in skipped] == [
        ("b", "dependency 'a' failed"), ("c", "dependency 'b' was skipped")]


async def test_fail_strategy_and_timeout() -> None:
    plan = make_plan({"stuck": []}, fallback_strategy=["fail"])
    never = asyncio.Event()

    async def run_task(task: TaskSpec, route: RouteDecision, deps: dict[str, TaskOutcome], attempt: int) -> TaskOutcome:
        await never.wait()
        raise AssertionError("unreachable")

    sched, _ = scheduler(run_task, task_timeout_s=0.05)
    outcome = (await run(sched, plan))["stuck"]
    assert (outcome.status, outcome.attempts) == ("failed", 1)
    assert outcome.error == "timed out after 0.05 s (scheduler task_timeout_s)"


async def test_internal_error_fails_the_task_without_retries() -> None:
    plan = make_plan({"bug": [], "ok": []})
    calls: list[str] = []

    async def run_task(task: TaskSpec, route: RouteDecision, deps: dict[str, TaskOutcome], attempt: int) -> TaskOutcome:
        calls.append(task.id)
        if task.id == "bug":
            raise KeyError("oops")
        return done_outcome(task, "fine")

    sched, _ = scheduler(run_task)
    outcomes = await run(sched, plan)
    assert calls.count("bug") == 1
    assert outcomes["bug"].status == "failed" and outcomes["bug"].error.startswith("KeyError: 'oops'")
    assert outcomes["ok"].status == "done"


async def test_unroutable_task_fails_with_the_routers_message() -> None:
    from aetherflow.errors import ModelUnavailableError

    plan = make_plan({"a": [], "b": ["a"]})
    router = FakeRouter(route_error=ModelUnavailableError("No model can serve task 'a' (sonnet: key missing)."))

    async def run_task(*_: Any) -> TaskOutcome:
        raise AssertionError("must not run")

    sched, _ = scheduler(run_task, router)
    outcomes = await run(sched, plan)
    assert outcomes["a"].status == "failed"
    assert outcomes["a"].error == "No model can serve task 'a' (sonnet: key missing)."
    assert outcomes["b"].status == "skipped"


# ---- budget, resume, cancellation -------------------------------------------------------------------------


async def test_budget_stop_lets_running_tasks_finish_and_skips_the_rest() -> None:
    plan = make_plan({"a": [], "b1": ["a"], "b2": ["a"], "b3": ["a"], "c": ["b1", "b2", "b3"]})
    release_b2, b2_started = asyncio.Event(), asyncio.Event()
    calls: list[str] = []

    async def run_task(task: TaskSpec, route: RouteDecision, deps: dict[str, TaskOutcome], attempt: int) -> TaskOutcome:
        calls.append(task.id)
        if task.id == "b1":
            await b2_started.wait()
            raise BudgetExceededError("Refused the call: only $0.0001 of the per-run budget of $0.10 remains.")
        if task.id == "b2":
            b2_started.set()
            await release_b2.wait()  # still running when the budget stop happens
        return done_outcome(task, task.id)

    bus_outcomes: list[TaskOutcome] = []

    def on_outcome(outcome: TaskOutcome) -> None:
        bus_outcomes.append(outcome)
        if outcome.task_id == "b1":
            release_b2.set()

    sched, _ = scheduler(run_task, max_concurrency=2, on_outcome=on_outcome)
    outcomes = await run(sched, plan)

    assert sorted(calls) == ["a", "b1", "b2"]
    assert outcomes["b2"].status == "done"
    for task_id in ("b1", "b3", "c"):
        assert outcomes[task_id].status == "skipped"
        assert outcomes[task_id].error.startswith("budget reached: Refused the call"), task_id
    assert sorted(o.task_id for o in bus_outcomes) == ["a", "b1", "b2", "b3", "c"]


async def test_budget_refused_at_routing_stops_the_run() -> None:
    plan = make_plan({"a": [], "b": ["a"]})
    router = FakeRouter(route_error=BudgetExceededError("No model for task 'a' fits the remaining budget."))

    async def run_task(*_: Any) -> TaskOutcome:
        raise AssertionError("must not run")

    sched, _ = scheduler(run_task, router)
    outcomes = await run(sched, plan)
    expected = "budget reached: No model for task 'a' fits the remaining budget."
    assert [o.error for o in outcomes.values()] == [expected] * 2


async def test_resume_skips_done_tasks_and_reruns_the_others() -> None:
    plan = make_plan({"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]})
    calls: list[str] = []
    received: dict[str, dict[str, str]] = {}

    async def run_task(task: TaskSpec, route: RouteDecision, deps: dict[str, TaskOutcome], attempt: int) -> TaskOutcome:
        calls.append(task.id)
        received[task.id] = {k: v.output for k, v in deps.items()}
        return done_outcome(task, f"new-{task.id}")

    earlier = {
        "a": TaskOutcome(task_id="a", status="done", output="old-a", agent="coder", alias="deepseek", attempts=1),
        "b": TaskOutcome(task_id="b", status="done", output="old-b", attempts=2),
        "c": TaskOutcome(task_id="c", status="failed", error="boom"),
    }
    sched, recorder = scheduler(run_task)
    outcomes = await run(sched, plan, done=earlier)

    assert sorted(calls) == ["c", "d"]
    assert received["c"] == {"a": "old-a"} and received["d"] == {"b": "old-b", "c": "new-c"}
    assert outcomes["a"] == earlier["a"] and outcomes["c"].output == "new-c"
    assert sorted(o.task_id for o in recorder.outcomes) == ["c", "d"]
    assert recorder.states("a") == ["done"] and recorder.states("c") == ["pending", "running", "done"]


async def test_cancellation_stops_running_tasks_and_publishes_nothing_half_done() -> None:
    plan = make_plan({"a": [], "b": [], "c": ["a"], "quick": []})
    both_running = asyncio.Event()
    running: set[str] = set()
    cleaned_up: list[str] = []

    async def run_task(task: TaskSpec, route: RouteDecision, deps: dict[str, TaskOutcome], attempt: int) -> TaskOutcome:
        if task.id == "quick":
            return done_outcome(task, "q")
        running.add(task.id)
        if running == {"a", "b"}:
            both_running.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned_up.append(task.id)
        raise AssertionError("unreachable")

    sched, recorder = scheduler(run_task)
    run_task_handle = asyncio.create_task(sched.run(plan, "run-1"))
    async with asyncio.timeout(GUARD_S):
        await both_running.wait()
    run_task_handle.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run_task_handle

    assert sorted(cleaned_up) == ["a", "b"]
    assert [o.task_id for o in recorder.outcomes] == ["quick"]
    finals = [(e.task_id, e.state) for e in recorder.state_events() if e.state in ("done", "failed", "skipped")]
    assert finals == [("quick", "done")]
    assert recorder.states("c") == ["pending"]
    leftovers = [t for t in asyncio.all_tasks() if t.get_name().startswith("aether-task-")]
    assert leftovers == []


async def test_plan_that_cannot_be_ordered_is_refused() -> None:
    plan = make_plan({"a": ["b"], "b": ["a"]})

    async def run_task(*_: Any) -> TaskOutcome:
        raise AssertionError("must not run")

    sched, _ = scheduler(run_task)
    with pytest.raises(PlanError, match="a cycle: a -> b -> a"):
        await run(sched, plan)
