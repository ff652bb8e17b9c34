"""The main job: request -> context -> plan -> route -> parallel subtasks -> validation -> synthesis -> change set.

`Pipeline.run` never touches the user's files: everything happens in the run's worktree. `apply` (after review)
goes through the workspace's atomic apply; `discard` drops the worktree. Every step publishes events on the
services' bus, which the console view, the TUI, the JSON-lines trace and the ledger consume.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from aetherflow.errors import AetherError, BudgetExceededError, ModelUnavailableError, RunInterrupted
from aetherflow.events import ChangeSetReady, Event, PlanReady, RunFinished, RunStarted, RunStatus
from aetherflow.ledger.queries import LedgerOutcomeStats, past_solutions
from aetherflow.llm.images import image_part
from aetherflow.llm.types import CallRequest
from aetherflow.orchestrator.context import RunContext
from aetherflow.orchestrator.executor import TaskExecutor
from aetherflow.orchestrator.plan import Plan, TaskSpec
from aetherflow.orchestrator.planner import PLANNER_AGENT, make_plan, single_task_plan
from aetherflow.orchestrator.router import RouteDecision, Router
from aetherflow.orchestrator.runstate import JsonlTrace, RunState, RunStore, new_run_id
from aetherflow.orchestrator.scheduler import Scheduler, TaskOutcome
from aetherflow.orchestrator.synthesis import needs_synthesis, one_task_summary, plain_summary, synthesize
from aetherflow.orchestrator.validation import final_checks
from aetherflow.services import Services
from aetherflow.workspace.apply import AppliedRecord, Selection, apply_changes, recover_pending
from aetherflow.workspace.changeset import ChangeSet
from aetherflow.workspace.commit import commit_applied, refuse_commit_over_user_changes
from aetherflow.workspace.validate import CheckResult
from aetherflow.workspace.worktree import Workspace

CHANGESET_FILE = "changeset.json"


class RunResult(BaseModel):
    """What a run produced, ready for review."""

    run_id: str
    status: RunStatus
    plan: Plan | None = None
    outcomes: dict[str, TaskOutcome] = Field(default_factory=dict)
    changeset: ChangeSet | None = None
    checks: list[CheckResult] = Field(default_factory=list)
    summary: str | None = None
    cost_usd: float = 0.0
    message: str = ""


class Pipeline:
    """Runs requests against one repository with the services' settings, gateway, ledger and bus."""

    def __init__(self, services: Services, *, max_concurrency: int = 4, task_timeout_s: float = 900.0) -> None:
        self.services = services
        self.repo_root = services.require_repo()
        self.store = RunStore(self.repo_root)
        self.max_concurrency = max_concurrency
        self.task_timeout_s = task_timeout_s

    # ---- planning -----------------------------------------------------------------------------------------

    def router(self) -> Router:
        """The router over this repository's settings, availability, prices and recorded outcomes."""
        from aetherflow.llm.pricing import resolve_price

        settings, gateway = self.services.settings, self.services.gateway
        stats = LedgerOutcomeStats(self.services.ledger) if self.services.ledger is not None else None
        return Router(settings, gateway.availability, lambda alias: resolve_price(settings.models[alias]), stats)

    async def plan(self, request: str, run_id: str | None = None, images: int = 0) -> tuple[Plan, dict[str, RouteDecision]]:
        """Retrieve context, make the plan, route every subtask (used by `aether plan` and by `run`)."""
        if self.planning_mode() == "single":
            plan = single_task_plan(self.services.settings, request)
        else:
            context = RunContext(self.repo_root, self.services.settings, self.services.environ)
            try:
                past = past_solutions(self.services.ledger) if self.services.ledger is not None else []
                plan = await make_plan(self.services.gateway, self.services.settings, request,
                                       context.plan_context(request, past, images), run_id=run_id,
                                       repo_root=self.repo_root)
            finally:
                context.close()
        router, remaining = self.router(), self.services.gateway.budget.remaining_usd
        routes: dict[str, RouteDecision] = {}
        for task in plan.tasks:
            try:
                routes[task.id] = router.route(task, remaining)
            except (BudgetExceededError, ModelUnavailableError):
                # Left unrouted: the scheduler routes it again when it is ready, then skips it ("budget reached",
                # resumable) or fails it with this reason, instead of the whole run failing before it starts.
                continue
        return plan, routes

    def planning_mode(self) -> Literal["model", "single"]:
        """How this request is planned: planning.mode, where "auto" means one subtask when the orchestrator
        agent would run on a local model, which plans worse than it edits and costs a long call to do it."""
        settings = self.services.settings
        if settings.planning.mode != "auto":
            return settings.planning.mode
        try:
            chain = self.services.gateway.chain_for(CallRequest(agent=PLANNER_AGENT, messages=[]))
        except AetherError:
            return "model"  # the planner's own call will say what is wrong
        return "single" if chain and settings.models[chain[0]].local else "model"

    # ---- running ------------------------------------------------------------------------------------------

    async def run(self, request: str, *, images: list[Path] | None = None, resume_id: str | None = None) -> RunResult:
        """Run `request` (or resume run `resume_id`) up to a change set ready for review. Applies nothing."""
        recover_pending(self.repo_root)
        state = self._start_state(request, images, resume_id)
        trace = JsonlTrace(self.store, state.run_id)
        trace.attach(self.services.bus)
        self._publish(RunStarted(run_id=state.run_id, request=state.request, budget_usd=state.budget_usd))
        try:
            return await self._run(state)
        except asyncio.CancelledError:
            self._end(state, "cancelled", f"Cancelled; nothing was applied. Resume with `aether run --resume {state.run_id}`.")
            raise
        except AetherError as exc:
            # A failure before the verdict (every model down while planning, a plan error) still ends the run
            # on record, saved, so `aether runs` does not show it as planning forever and it can be resumed.
            # RunInterrupted comes from the verdict itself, which has already ended the run.
            if not isinstance(exc, RunInterrupted):
                self._end(state, "failed", f"{exc.message} Resume with `aether run --resume {state.run_id}`.")
            raise
        finally:
            trace.close()

    def _start_state(self, request: str, images: list[Path] | None, resume_id: str | None) -> RunState:
        if resume_id is not None:
            state = self.store.load(resume_id)
        else:
            state = RunState(run_id=new_run_id(), request=request, images=[str(p) for p in images or []],
                             budget_usd=self.services.settings.budget.per_run_usd)
        if self.services.ledger is not None:
            self.services.ledger.start_run(state.run_id, state.request, state.budget_usd)
        return state

    async def _run(self, state: RunState) -> RunResult:
        if state.plan is None:
            plan, routes = await self.plan(state.request, state.run_id, images=len(state.images))
            state.plan, state.routes = plan, {k: v.model_dump() for k, v in routes.items()}
            self._save(state, "running", plan=plan.model_dump())
        else:
            self._save(state, "running")  # a resumed run: the ledger row was reset by start_run
        self._publish(PlanReady(run_id=state.run_id, plan=state.plan.model_dump(), routes=state.routes))
        workspace = self._workspace(state)
        context = RunContext(self.repo_root, self.services.settings, self.services.environ)
        images = [image_part(Path(p)) for p in state.images]
        edits = [t for t in state.plan.tasks if t.expected_output.format == "edits"]
        executor = TaskExecutor(self.services, workspace, context, state.run_id, images=images,
                                check_driven=len(edits) == 1 == len(state.plan.tasks), is_last_route=self._last_route)
        try:
            outcomes = await self._schedule(state, executor)
            checks = executor.verified_checks()
            if checks is None:
                checks = await final_checks(self.services, workspace, context, state.run_id, self.router())
        finally:
            context.close()
        if self.services.ledger is not None:
            self.services.ledger.record_checks(state.run_id, all(c.ok for c in checks) if checks else None)
        return await self._finish(state, workspace, outcomes, checks)

    def _last_route(self, task: TaskSpec, route: RouteDecision) -> bool:
        """True when a subtask that fails on `route` has nothing stronger to go to (its strategy or the router)."""
        if "next_agent" not in task.fallback_strategy:
            return True
        return self.router().escalate(route, task, self.services.gateway.budget.remaining_usd) is None

    def _workspace(self, state: RunState) -> Workspace:
        if (self.repo_root / ".aetherflow" / "worktrees" / state.run_id).is_dir():
            return Workspace.open(self.repo_root, state.run_id)
        return Workspace.create(self.repo_root, state.run_id)

    async def _schedule(self, state: RunState, executor: TaskExecutor) -> dict[str, TaskOutcome]:
        assert state.plan is not None

        def persist(outcome: TaskOutcome) -> None:
            state.outcomes[outcome.task_id] = outcome.model_dump()
            self.store.save(state)
            self._record_task(state, outcome, executor)

        scheduler = Scheduler(
            self.services.settings, self.services.bus, self.router(), executor,
            max_concurrency=self.max_concurrency, task_timeout_s=self.task_timeout_s,
            remaining_budget=lambda: self.services.gateway.budget.remaining_usd, on_outcome=persist,
            discard_task=executor.discard,
        )
        done = {k: TaskOutcome.model_validate(v) for k, v in state.outcomes.items()}
        return await scheduler.run(state.plan, state.run_id, done=done)

    def _record_task(self, state: RunState, outcome: TaskOutcome, executor: TaskExecutor) -> None:
        if self.services.ledger is None or state.plan is None:
            return
        record = executor.records.get(outcome.task_id)
        self.services.ledger.record_task(
            state.run_id, outcome.task_id, task_type=state.plan.task(outcome.task_id).type, agent=outcome.agent,
            alias=outcome.alias, status=outcome.status, attempts=outcome.attempts, error=outcome.error or None,
            validation_first_try=None if record is None or record.validation_first_try is None
            else int(record.validation_first_try),
            started_at=outcome.started_at, ended_at=outcome.ended_at, cost_usd=outcome.cost_usd,
        )

    async def _finish(self, state: RunState, workspace: Workspace, outcomes: dict[str, TaskOutcome],
                      checks: list[CheckResult]) -> RunResult:
        assert state.plan is not None
        changeset = workspace.changeset()
        (self.store.folder(state.run_id) / CHANGESET_FILE).write_text(changeset.model_dump_json(), encoding="utf-8")
        plain = plain_summary(state.plan, outcomes, changeset, checks)
        if needs_synthesis(state.plan):
            state.summary = await synthesize(self.services, state.run_id, state.request, plain)
        else:
            state.summary = one_task_summary(outcomes, plain)
        self._publish(ChangeSetReady(run_id=state.run_id, files={f.path: (f.added, f.removed) for f in changeset.files}))
        status, message = _verdict(state.run_id, outcomes, changeset)
        self._end(state, status, message)
        result = self._result(state, changeset, checks)
        if status == "failed" and not changeset.files:
            raise RunInterrupted(message, f"Resume it with `aether run --resume {state.run_id}` once the cause is fixed.")
        return result

    # ---- after review -------------------------------------------------------------------------------------

    def apply(self, result: RunResult, selection: Selection, *, commit: bool = False) -> AppliedRecord:
        """Apply the accepted files and hunks atomically; record the review outcome; optionally commit."""
        if result.changeset is None:
            raise RunInterrupted("This run has no change set to apply.", "Run the request again.")
        workspace = Workspace.open(self.repo_root, result.run_id)
        if commit:
            refuse_commit_over_user_changes(self.repo_root, sorted(selection), result.run_id)
        record = apply_changes(self.repo_root, result.changeset, selection, workspace.user_snapshot)
        accepted = sorted(selection)
        rejected = [p for p in result.changeset.paths() if p not in selection]
        state = self.store.load(result.run_id)
        if self.services.ledger is not None:
            self.services.ledger.record_outcomes(result.run_id, accepted, rejected)
        if commit and record.files:
            commit_applied(self.repo_root, record, _commit_message(state))
        workspace.remove()
        self._end(state, "applied", f"Applied {len(record.files)} file(s); `aether undo` reverts them.")
        return record

    def discard(self, result: RunResult) -> None:
        """Reject everything: record it, drop the worktree, keep the user's files as they are."""
        state = self.store.load(result.run_id)
        if self.services.ledger is not None and result.changeset is not None:
            self.services.ledger.record_outcomes(result.run_id, [], result.changeset.paths())
        Workspace.open(self.repo_root, result.run_id).remove()
        self._end(state, "discarded", "Nothing was applied.")

    def load_result(self, run_id: str) -> RunResult:
        """A past run's result, with its saved change set, for review."""
        state = self.store.load(run_id)
        path = self.store.folder(run_id) / CHANGESET_FILE
        changeset = ChangeSet.model_validate_json(path.read_text(encoding="utf-8")) if path.is_file() else None
        return self._result(state, changeset, [])

    # ---- plumbing -----------------------------------------------------------------------------------------

    def _result(self, state: RunState, changeset: ChangeSet | None, checks: list[CheckResult]) -> RunResult:
        cost = self.services.ledger.total_cost_usd(state.run_id) if self.services.ledger is not None else 0.0
        return RunResult(
            run_id=state.run_id, status=state.status, plan=state.plan,
            outcomes={k: TaskOutcome.model_validate(v) for k, v in state.outcomes.items()},
            changeset=changeset, checks=checks, summary=state.summary, cost_usd=cost, message=state.message,
        )

    def _save(self, state: RunState, status: RunStatus, **ledger_fields: object) -> None:
        state.status = status
        self.store.save(state)
        if self.services.ledger is not None:
            self.services.ledger.update_run(state.run_id, status=status, **ledger_fields)

    def _end(self, state: RunState, status: RunStatus, message: str) -> None:
        state.message = message
        ended = {"ended_at": time.time(), "message": message, "summary": state.summary}
        self._save(state, status, **ended)
        cost = self.services.ledger.total_cost_usd(state.run_id) if self.services.ledger is not None else 0.0
        self._publish(RunFinished(run_id=state.run_id, status=status, cost_usd=cost, message=message))

    def _publish(self, event: Event) -> None:
        self.services.bus.publish(event)


def _verdict(run_id: str, outcomes: dict[str, TaskOutcome], changeset: ChangeSet) -> tuple[RunStatus, str]:
    """The run's status and message after its subtasks and checks."""
    failed = [o for o in outcomes.values() if o.status == "failed"]
    budget = [o for o in outcomes.values() if o.status == "skipped" and o.error.startswith("budget reached")]
    notes = []
    if budget:
        notes.append(f"budget reached: {len(budget)} subtask(s) not run")
    if failed:
        notes.append(f"{len(failed)} subtask(s) failed ({failed[0].task_id}: {failed[0].error})")
    resume = f" Resume with `aether run --resume {run_id}`." if (failed or budget) else ""
    if not changeset.files:
        reason = "; ".join(notes) or "the subtasks finished without changing any file"
        return ("failed" if failed or budget else "review"), f"The model produced no usable edit: {reason}.{resume}"
    summary = f"{len(changeset.files)} file(s) changed, ready for review"
    return "review", summary + (f" ({'; '.join(notes)})." if notes else ".") + resume


def _commit_message(state: RunState) -> str:
    first = state.request.strip().splitlines()[0][:60]
    return f"aether: {first}\n\n{state.summary or ''}\n\nRun {state.run_id}".strip()
