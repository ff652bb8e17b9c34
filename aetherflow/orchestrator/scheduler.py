"""The scheduler: runs a plan's subtasks in parallel as soon as their own dependencies are done.

There are no layer barriers: each subtask starts the moment every one of its dependencies has finished, bounded by
a global limit and a per-provider limit. A failed attempt follows the subtask's fallback strategy (retry, escalate
to a stronger model, simplify, give up); the dependents of a subtask that did not finish are skipped with the
reason. When the budget runs out, nothing new starts, running subtasks finish, and the rest are skipped so the
run can be resumed. A subtask that ends without finishing (failed, skipped by the budget, cancelled) has what it
wrote taken back through `discard_task`, so only finished work reaches the change set and a resume starts it
afresh; so does each failed attempt before the next one. Every transition is published as a TaskStateChanged event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aetherflow.config.models import Settings
from aetherflow.errors import AetherError, BudgetExceededError, PlanError
from aetherflow.events import EventBus, TaskState, TaskStateChanged
from aetherflow.orchestrator.plan import FallbackStep, Plan, TaskSpec, find_cycle
from aetherflow.orchestrator.router import RouteDecision
from aetherflow.orchestrator.task_types import DiscardTask, RunTask, TaskOutcome, TaskRouter

log = logging.getLogger(__name__)

SIMPLIFY_NOTE = (
    "\n\nA previous attempt at this subtask failed: {error}\n"
    "Make the smallest, safest change that meets the acceptance criteria, and leave everything else as it is."
)
_MAX_ERROR_IN_NOTE = 500


class _NotStarted(Exception):
    """A subtask got its slot after the budget stop, so it is not started."""


@dataclass
class _Attempts:
    """The mutable state of one subtask across its attempts."""

    task: TaskSpec
    route: RouteDecision
    deps: dict[str, TaskOutcome]
    steps: list[FallbackStep]
    attempt: int = 0
    started_at: float | None = None
    errors: list[str] = field(default_factory=list)
    # What failed attempts that returned an outcome cost (raised failures report theirs through the ledger).
    spent_usd: float = 0.0


class Scheduler:
    """Runs plans. One Scheduler can run several plans one after another; each run gets fresh limits."""

    def __init__(
        self,
        settings: Settings,
        bus: EventBus,
        router: TaskRouter,
        run_task: RunTask,
        *,
        max_concurrency: int = 4,
        per_provider: int | None = None,
        task_timeout_s: float,
        remaining_budget: Callable[[], float | None],
        on_outcome: Callable[[TaskOutcome], None] | None = None,
        discard_task: DiscardTask | None = None,
    ) -> None:
        if max_concurrency < 1 or (per_provider is not None and per_provider < 1):
            raise ValueError("concurrency limits must be at least 1")
        self.settings = settings
        self.bus = bus
        self.router = router
        self.run_task = run_task
        self.max_concurrency = max_concurrency
        self.per_provider = per_provider
        self.task_timeout_s = task_timeout_s
        self.remaining_budget = remaining_budget
        self.on_outcome = on_outcome
        self.discard_task = discard_task

    async def run(self, plan: Plan, run_id: str, done: dict[str, TaskOutcome] | None = None) -> dict[str, TaskOutcome]:
        """Run every subtask of `plan` not already done; return the outcome of every subtask.

        `done` holds outcomes from an earlier, interrupted attempt of this run: those with status "done" are kept
        and not run again (failed and skipped ones are run again). Cancelling the calling task cancels the running
        subtasks, waits for them to stop, and re-raises CancelledError.
        """
        _check_graph(plan)
        return await _Run(self, plan, run_id, done or {}).drive()

    def provider_limit(self, provider: str) -> int:
        """The concurrency limit of `provider`: `per_provider`, else the largest max_concurrency of its models
        (the gateway enforces each model's own limit as well)."""
        if self.per_provider is not None:
            return self.per_provider
        limits = [m.max_concurrency for m in self.settings.models.values() if m.provider == provider]
        return max(limits, default=self.max_concurrency)

    def provider_of(self, alias: str) -> str:
        model = self.settings.models.get(alias)
        return model.provider if model is not None else alias


def _check_graph(plan: Plan) -> None:
    """Refuse a plan the scheduler cannot order: unknown dependencies or a cycle (check_plan should have caught
    these; running such a plan would wait forever)."""
    ids = {t.id for t in plan.tasks}
    unknown = sorted({d for t in plan.tasks for d in t.depends_on if d not in ids})
    cycle = find_cycle(plan)
    if unknown or cycle:
        problem = f"unknown dependencies {', '.join(unknown)}" if unknown else "a cycle: " + " -> ".join(cycle)
        raise PlanError(f"The plan cannot be scheduled: it has {problem}.", "Make the plan again (`aether plan`).")


class _Run:
    """One execution of a plan: the outcomes so far, the subtasks waiting, the ones running, the limits."""

    def __init__(self, owner: Scheduler, plan: Plan, run_id: str, done: dict[str, TaskOutcome]) -> None:
        self.owner = owner
        self.plan = plan
        self.run_id = run_id
        self.outcomes: dict[str, TaskOutcome] = {}
        self.pending: list[str] = []
        self.running: dict[asyncio.Task[TaskOutcome], str] = {}
        self.budget_stop: str | None = None
        self.global_slots = asyncio.Semaphore(owner.max_concurrency)
        self.provider_slots: dict[str, asyncio.Semaphore] = {}
        # Task id -> the files its failed attempts wrote and that were put back (named in its outcome).
        self.taken_back: dict[str, set[str]] = {}
        self._announce(done)

    def _announce(self, done: dict[str, TaskOutcome]) -> None:
        for task in self.plan.tasks:
            previous = done.get(task.id)
            if previous is not None and previous.status == "done":
                self.outcomes[task.id] = previous
                self._publish(task.id, "done", previous.agent, previous.alias, previous.attempts,
                              "finished before the run was resumed")
            else:
                self.pending.append(task.id)
                self._publish(task.id, "pending")

    # ---- the loop -----------------------------------------------------------------------------------------

    async def drive(self) -> dict[str, TaskOutcome]:
        try:
            while True:
                self._skip_blocked()
                if self.budget_stop is None:
                    self._start_ready()
                if not self.running:
                    break
                finished, _ = await asyncio.wait(self.running, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    self.running.pop(task)
                    self._finish(task.result())
            self._skip_rest()
        finally:
            await self._cancel_running()
        return {t.id: self.outcomes[t.id] for t in self.plan.tasks}

    async def _cancel_running(self) -> None:
        """Cancel subtasks still running (the run was cancelled or crashed) and wait until they have stopped.

        Subtasks that had already ended keep their outcome (so a resume does not redo them); the cancelled ones
        publish nothing more and are run again on resume.
        """
        for task in [t for t in self.running if t.done() and not t.cancelled() and t.exception() is None]:
            self.running.pop(task)
            self._finish(task.result())
        if not self.running:
            return
        for task in self.running:
            task.cancel()
        await asyncio.gather(*self.running, return_exceptions=True)
        self.running.clear()

    def _start_ready(self) -> None:
        for task_id in list(self.pending):
            task = self.plan.task(task_id)
            if all(self._status(d) == "done" for d in task.depends_on):
                self.pending.remove(task_id)
                runner = asyncio.create_task(self._execute(task), name=f"aether-task-{task_id}")
                self.running[runner] = task_id

    def _skip_blocked(self) -> None:
        """Skip every waiting subtask with a dependency that failed or was skipped, transitively."""
        changed = True
        while changed:
            changed = False
            for task_id in list(self.pending):
                blocker = self._blocker(self.plan.task(task_id))
                if blocker:
                    self.pending.remove(task_id)
                    self._finish(TaskOutcome(task_id=task_id, status="skipped", error=blocker))
                    changed = True

    def _blocker(self, task: TaskSpec) -> str:
        for dep in task.depends_on:
            status = self._status(dep)
            if status == "failed":
                return f"dependency '{dep}' failed"
            # Under a budget stop, "budget reached" is the truer reason; _skip_rest gives it.
            if status == "skipped" and self.budget_stop is None:
                return f"dependency '{dep}' was skipped"
        return ""

    def _skip_rest(self) -> None:
        reason = f"budget reached: {self.budget_stop}" if self.budget_stop else "its dependencies never finished"
        for task_id in list(self.pending):
            self.pending.remove(task_id)
            self._finish(TaskOutcome(task_id=task_id, status="skipped", error=reason))

    def _status(self, task_id: str) -> str | None:
        outcome = self.outcomes.get(task_id)
        return outcome.status if outcome is not None else None

    def _finish(self, outcome: TaskOutcome) -> None:
        self.outcomes[outcome.task_id] = outcome
        if self.owner.on_outcome is not None:
            self.owner.on_outcome(outcome)
        detail = outcome.error if outcome.status != "done" else ""
        self._publish(outcome.task_id, outcome.status, outcome.agent, outcome.alias, outcome.attempts, detail)

    # ---- one subtask --------------------------------------------------------------------------------------

    async def _execute(self, task: TaskSpec) -> TaskOutcome:
        """Run `task`; if it ends without finishing, take back what it wrote (and say so in its outcome)."""
        try:
            outcome = await self._attempt_until_done(task)
        except asyncio.CancelledError:
            await self._discard(task.id)
            raise
        if outcome.status == "done":
            return outcome
        await self._discard(task.id)
        restored = sorted(self.taken_back.pop(task.id, set()))
        if not restored:
            return outcome
        note = f" (its unfinished changes to {', '.join(restored)} were taken back)"
        return outcome.model_copy(update={"error": outcome.error + note})

    async def _discard(self, task_id: str) -> None:
        """Put back what `task_id` wrote since it started or since its last failed attempt."""
        if self.owner.discard_task is not None:
            restored = await self.owner.discard_task(task_id)
            self.taken_back.setdefault(task_id, set()).update(restored)

    async def _attempt_until_done(self, task: TaskSpec) -> TaskOutcome:
        """Route `task`, then attempt it until it succeeds or its fallback strategy gives up."""
        try:
            route = self.owner.router.route(task, self.owner.remaining_budget())
        except BudgetExceededError as exc:
            return self._budget_skip(task.id, exc, None)
        except AetherError as exc:
            return TaskOutcome(task_id=task.id, status="failed", error=exc.message, ended_at=time.time())
        deps = {d: self.outcomes[d] for d in task.depends_on}
        state = _Attempts(task, route, deps, list(task.fallback_strategy))
        while True:
            state.attempt += 1
            try:
                outcome = await self._attempt(state)
            except _NotStarted as stop:
                return TaskOutcome(task_id=task.id, status="skipped", error=f"budget reached: {stop}")
            except BudgetExceededError as exc:
                return self._budget_skip(task.id, exc, state)
            except (AetherError, TimeoutError) as exc:
                state.errors.append(self._describe(exc))
            except Exception as exc:  # noqa: BLE001 - a crash in one subtask must not take down its siblings
                log.exception("subtask %s crashed", task.id)
                return self._failed(state, f"{type(exc).__name__}: {exc} (an internal error; not retried)")
            else:
                if outcome.status != "failed":
                    return self._ended(state, outcome)
                state.errors.append(outcome.error or "the subtask reported a failure")
                state.spent_usd += outcome.cost_usd
            try:
                step = self._next_step(state)
            except BudgetExceededError as exc:
                return self._budget_skip(task.id, exc, state)
            if step is None:
                return self._failed(state, state.errors[-1])
            # The next attempt (a retry, a stronger model) starts from the files as they were before this
            # subtask, not from the edits that just failed.
            await self._discard(task.id)
            self._publish(task.id, "retrying", state.route.agent, state.route.alias, state.attempt + 1,
                          f"{step}: {state.errors[-1]}")

    async def _attempt(self, state: _Attempts) -> TaskOutcome:
        """One attempt under the provider and global limits and the per-subtask timeout."""
        route = state.route
        async with self._provider_slot(route.alias), self.global_slots:
            if state.started_at is None:
                if self.budget_stop is not None:
                    # The budget ran out while this subtask waited for a slot: it must not start.
                    raise _NotStarted(self.budget_stop)
                state.started_at = time.time()
            self._publish(state.task.id, "running", route.agent, route.alias, state.attempt)
            async with asyncio.timeout(self.owner.task_timeout_s):
                return await self.owner.run_task(state.task, route, state.deps, state.attempt)

    def _provider_slot(self, alias: str) -> asyncio.Semaphore:
        provider = self.owner.provider_of(alias)
        if provider not in self.provider_slots:
            self.provider_slots[provider] = asyncio.Semaphore(self.owner.provider_limit(provider))
        return self.provider_slots[provider]

    def _next_step(self, state: _Attempts) -> FallbackStep | None:
        """Apply the next usable step of the fallback strategy to `state`; None when it says to give up.

        Raises BudgetExceededError when the next stronger model exists but does not fit the budget."""
        while state.steps:
            step = state.steps.pop(0)
            if step == "fail":
                return None
            if step == "next_agent":
                remaining = self.owner.remaining_budget()
                stronger = self.owner.router.escalate(state.route, state.task, remaining)
                if stronger is None:
                    # Nothing stronger fits the budget, yet something stronger exists: that is a budget stop (the
                    # subtask is skipped and resumable), not a failure of the model that was tried.
                    if remaining is not None:
                        unbounded = self.owner.router.escalate(state.route, state.task, None)
                        if unbounded is not None:
                            raise _unaffordable(state, unbounded.alias, remaining)
                    continue
                state.route = stronger
            elif step == "simplify_and_retry":
                error = state.errors[-1][:_MAX_ERROR_IN_NOTE]
                note = SIMPLIFY_NOTE.format(error=error)
                state.task = state.task.model_copy(update={"description": state.task.description + note})
            return step
        return None

    def _describe(self, exc: AetherError | TimeoutError) -> str:
        if isinstance(exc, AetherError):
            return exc.message
        return f"timed out after {self.owner.task_timeout_s:g} s (scheduler task_timeout_s)"

    # ---- outcomes -----------------------------------------------------------------------------------------

    def _ended(self, state: _Attempts, outcome: TaskOutcome) -> TaskOutcome:
        return outcome.model_copy(update={
            "task_id": state.task.id, "agent": state.route.agent, "alias": state.route.alias,
            "attempts": state.attempt, "started_at": state.started_at, "ended_at": time.time(),
            "cost_usd": state.spent_usd + outcome.cost_usd,
        })

    def _failed(self, state: _Attempts, error: str) -> TaskOutcome:
        return TaskOutcome(
            task_id=state.task.id, status="failed", error=error, agent=state.route.agent, alias=state.route.alias,
            attempts=state.attempt, started_at=state.started_at, ended_at=time.time(), cost_usd=state.spent_usd,
        )

    def _budget_skip(self, task_id: str, exc: BudgetExceededError, state: _Attempts | None) -> TaskOutcome:
        """The budget ran out: stop starting subtasks; this one is skipped so that a resume runs it again."""
        if self.budget_stop is None:
            self.budget_stop = exc.message
        return TaskOutcome(
            task_id=task_id, status="skipped", error=f"budget reached: {exc.message}",
            agent=state.route.agent if state else None, alias=state.route.alias if state else None,
            attempts=state.attempt if state else 0, started_at=state.started_at if state else None,
            ended_at=time.time(),
        )

    def _publish(
        self, task_id: str, state: TaskState, agent: str | None = None, alias: str | None = None,
        attempt: int = 1, detail: str = "",
    ) -> None:
        self.owner.bus.publish(TaskStateChanged(
            run_id=self.run_id, task_id=task_id, state=state, agent=agent, alias=alias,
            attempt=max(attempt, 1), detail=detail,
        ))


def _unaffordable(state: _Attempts, fallback: str, remaining_usd: float) -> BudgetExceededError:
    """The budget stop of a subtask whose fallback does not fit: what failed, and what the fallback would need."""
    return BudgetExceededError(
        f"{state.route.alias} failed ({state.errors[-1][:_MAX_ERROR_IN_NOTE]}) and its fallback {fallback} "
        f"could cost more than the ${remaining_usd:.4f} left",
        "Raise the limit with `--budget USD`, or set budget.per_run_usd in aetherflow.toml, then resume the run.",
    )


__all__ = ["DiscardTask", "RunTask", "Scheduler", "TaskOutcome", "TaskRouter"]
