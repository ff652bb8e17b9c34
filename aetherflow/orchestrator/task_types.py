"""What the scheduler exchanges with its callers: a subtask's outcome, and the callables and router it is given.

Kept apart from the scheduler so the pipeline, the executor, the run store and the views can use them without
the scheduling machinery.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal, Protocol

from pydantic import BaseModel

from aetherflow.orchestrator.plan import TaskSpec
from aetherflow.orchestrator.router import RouteDecision


class TaskOutcome(BaseModel):
    """How one subtask ended. `output` is what dependents receive; `error` says why it failed or was skipped."""

    task_id: str
    status: Literal["done", "failed", "skipped"]
    output: str = ""
    error: str = ""
    agent: str | None = None
    alias: str | None = None
    attempts: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    cost_usd: float = 0.0


# (task, route, outcomes of its dependencies, attempt number) -> outcome; raises on failure.
RunTask = Callable[[TaskSpec, RouteDecision, dict[str, TaskOutcome], int], Awaitable[TaskOutcome]]
# task id -> the files put back as they were before the subtask wrote them.
DiscardTask = Callable[[str], Awaitable[list[str]]]


class TaskRouter(Protocol):
    """What the scheduler needs of the router (aetherflow.orchestrator.router.Router provides it)."""

    def route(self, task: TaskSpec, remaining_budget_usd: float | None) -> RouteDecision: ...

    def escalate(
        self, decision: RouteDecision, task: TaskSpec, remaining_budget_usd: float | None = None
    ) -> RouteDecision | None: ...
