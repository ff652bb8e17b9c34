"""The state of one run as its events describe it, for any UI (plain console, TUI) to render.

Consumers feed every event to `RunBoard.apply`; rendering reads `snapshot()` at its own pace, so a burst of
events (text deltas, cost ticks) costs one cheap update each and the screen refresh coalesces them.
"""

from __future__ import annotations

import threading
import time

from pydantic import BaseModel, Field

from aetherflow.events import (
    CallFailed,
    CallFallback,
    CallFinished,
    CallRetry,
    CallStarted,
    CallTextDelta,
    ChangeSetReady,
    Event,
    PlanReady,
    RunFinished,
    RunStarted,
    TaskState,
    TaskStateChanged,
    ToolExecuted,
    ValidationFinished,
)

TAIL_CHARS = 4000


class TaskRow(BaseModel):
    """One subtask's line on the board."""

    task_id: str
    description: str = ""
    task_type: str = ""
    depends_on: list[str] = Field(default_factory=list)
    state: TaskState = "pending"
    agent: str | None = None
    alias: str | None = None
    reason: str = ""
    attempt: int = 1
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    cache_hits: int = 0
    detail: str = ""
    output_tail: str = ""


class BoardSnapshot(BaseModel):
    """An immutable copy of the board for rendering."""

    run_id: str | None
    request: str
    status: str
    started_at: float | None
    elapsed_s: float
    budget_usd: float | None
    tasks: list[TaskRow]
    cost_usd: float
    cost_by_agent: dict[str, float]
    tokens_in: int
    tokens_out: int
    cache_hits: int
    planner_cost_usd: float
    errors: list[str]
    validations: list[tuple[str, bool]]
    changed_files: dict[str, tuple[int, int]]
    message: str


class RunBoard:
    """Folds run events into rows. Thread-safe: events may arrive from the loop while a renderer reads."""

    def __init__(self, run_id: str | None = None) -> None:
        self._lock = threading.Lock()
        self.run_id = run_id
        self.request = ""
        self.status = "planning"
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.budget_usd: float | None = None
        self.tasks: dict[str, TaskRow] = {}
        self.cost_by_agent: dict[str, float] = {}
        self.planner_cost_usd = 0.0
        self.totals = {"in": 0, "out": 0, "hits": 0}
        self.errors: list[str] = []
        self.validations: list[tuple[str, bool]] = []
        self.changed_files: dict[str, tuple[int, int]] = {}
        self.message = ""

    def apply(self, event: Event) -> None:
        """Update the board with one event (events of other runs are ignored once the run id is known)."""
        if self.run_id is not None and event.run_id not in (None, self.run_id):
            return
        with self._lock:
            handler = _HANDLERS.get(type(event))
            if handler is not None:
                handler(self, event)

    def _row(self, task_id: str | None) -> TaskRow | None:
        if task_id is None:
            return None
        return self.tasks.setdefault(task_id, TaskRow(task_id=task_id))

    def snapshot(self) -> BoardSnapshot:
        """A consistent copy for rendering."""
        with self._lock:
            end = self.ended_at or time.time()
            return BoardSnapshot(
                run_id=self.run_id, request=self.request, status=self.status, started_at=self.started_at,
                elapsed_s=(end - self.started_at) if self.started_at else 0.0, budget_usd=self.budget_usd,
                tasks=[row.model_copy() for row in self.tasks.values()],
                cost_usd=sum(self.cost_by_agent.values()), cost_by_agent=dict(self.cost_by_agent),
                tokens_in=self.totals["in"], tokens_out=self.totals["out"], cache_hits=self.totals["hits"],
                planner_cost_usd=self.planner_cost_usd, errors=list(self.errors),
                validations=list(self.validations), changed_files=dict(self.changed_files), message=self.message,
            )


def _on_run_started(board: RunBoard, e: RunStarted) -> None:
    board.run_id = board.run_id or e.run_id
    board.request, board.budget_usd, board.started_at = e.request, e.budget_usd, e.ts


def _on_plan(board: RunBoard, e: PlanReady) -> None:
    board.status = "running"
    for task in e.plan.get("tasks", []):
        row = board._row(task["id"])
        route = e.routes.get(task["id"], {})
        row.description, row.task_type = task.get("description", ""), task.get("type", "")
        row.depends_on = list(task.get("depends_on", []))
        row.agent, row.alias, row.reason = route.get("agent"), route.get("alias"), route.get("reason", "")


def _on_task_state(board: RunBoard, e: TaskStateChanged) -> None:
    row = board._row(e.task_id)
    if row is None:
        return
    row.state, row.attempt, row.detail = e.state, e.attempt, e.detail or row.detail
    row.agent, row.alias = e.agent or row.agent, e.alias or row.alias
    if e.state == "failed" and e.detail:
        board.errors.append(f"{e.task_id}: {e.detail}")


def _on_call_started(board: RunBoard, e: CallStarted) -> None:
    row = board._row(e.task_id)
    if row is not None:
        row.alias = e.alias


def _on_text(board: RunBoard, e: CallTextDelta) -> None:
    row = board._row(e.task_id)
    if row is not None:
        row.output_tail = (row.output_tail + e.text)[-TAIL_CHARS:]


def _on_tool(board: RunBoard, e: ToolExecuted) -> None:
    row = board._row(e.task_id)
    if row is not None:
        mark = "✓" if e.ok else "✗"
        row.output_tail = (row.output_tail + f"\n{mark} {e.name} {e.summary}\n")[-TAIL_CHARS:]


def _on_call_finished(board: RunBoard, e: CallFinished) -> None:
    board.totals["in"] += e.usage.prompt_tokens
    board.totals["out"] += e.usage.completion_tokens
    board.totals["hits"] += int(e.cache_hit)
    agent = e.agent or "-"
    board.cost_by_agent[agent] = board.cost_by_agent.get(agent, 0.0) + e.cost_usd
    row = board._row(e.task_id)
    if row is None:
        board.planner_cost_usd += e.cost_usd
        return
    row.tokens_in += e.usage.prompt_tokens
    row.tokens_out += e.usage.completion_tokens
    row.cost_usd += e.cost_usd
    row.cache_hits += int(e.cache_hit)


def _on_call_failed(board: RunBoard, e: CallFailed) -> None:
    board.errors.append(f"{e.task_id or 'run'}: {e.alias}: {e.error}")
    board.cost_by_agent["-"] = board.cost_by_agent.get("-", 0.0) + e.cost_usd


def _on_retry(board: RunBoard, e: CallRetry) -> None:
    row = board._row(e.task_id)
    if row is not None:
        row.detail = f"retry {e.attempt} on {e.alias} in {e.wait_s:.1f}s: {e.error}"


def _on_fallback(board: RunBoard, e: CallFallback) -> None:
    row = board._row(e.task_id)
    if row is not None:
        row.alias, row.detail = e.to_alias, f"fell back from {e.from_alias}: {e.reason}"


def _on_validation(board: RunBoard, e: ValidationFinished) -> None:
    board.status = "validating"
    board.validations.append((e.step, e.ok))
    if not e.ok:
        board.errors.append(f"validation {e.step} failed")


def _on_changeset(board: RunBoard, e: ChangeSetReady) -> None:
    board.status, board.changed_files = "review", dict(e.files)


def _on_finished(board: RunBoard, e: RunFinished) -> None:
    board.status, board.message, board.ended_at = e.status, e.message, e.ts


_HANDLERS = {
    RunStarted: _on_run_started,
    PlanReady: _on_plan,
    TaskStateChanged: _on_task_state,
    CallStarted: _on_call_started,
    CallTextDelta: _on_text,
    ToolExecuted: _on_tool,
    CallFinished: _on_call_finished,
    CallFailed: _on_call_failed,
    CallRetry: _on_retry,
    CallFallback: _on_fallback,
    ValidationFinished: _on_validation,
    ChangeSetReady: _on_changeset,
    RunFinished: _on_finished,
}
