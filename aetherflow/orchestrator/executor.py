"""Runs one subtask for the scheduler: the agent's tool loop, then a syntax check of what it changed.

A failed syntax check goes back to the same agent for one fix round; if it still fails, the executor raises so
that the scheduler's fallback strategy retries the subtask on the next stronger model (the brief's escalation).
"""

from __future__ import annotations

from pydantic import BaseModel

from aetherflow.errors import AetherError
from aetherflow.events import ValidationFinished
from aetherflow.llm.types import ImagePart
from aetherflow.orchestrator.agent import AgentLimits, AgentResult, run_agent
from aetherflow.orchestrator.context import RunContext
from aetherflow.orchestrator.plan import TaskSpec
from aetherflow.orchestrator.router import RouteDecision
from aetherflow.orchestrator.scheduler import TaskOutcome
from aetherflow.orchestrator.tools import ToolBox
from aetherflow.prompts import load_prompt
from aetherflow.services import Services
from aetherflow.workspace.validate import CheckResult, syntax_check
from aetherflow.workspace.worktree import Workspace

FIX_NOTE = (
    "Your previous edits do not pass validation. Fix exactly these problems, changing nothing else:\n{output}"
)


class ValidationFailed(AetherError):
    """A subtask's edits still fail validation after its fix round."""


class TaskRecord(BaseModel):
    """What the executor learned about a subtask beyond its outcome (for the ledger)."""

    validation_first_try: bool | None = None
    edits: list[str] = []


class TaskExecutor:
    """The scheduler's RunTask: one attempt of one subtask in the run's workspace."""

    def __init__(self, services: Services, workspace: Workspace, context: RunContext, run_id: str,
                 limits: AgentLimits | None = None, images: list[ImagePart] | None = None) -> None:
        self.services = services
        self.workspace = workspace
        self.context = context
        self.run_id = run_id
        self.limits = limits or AgentLimits()
        self.records: dict[str, TaskRecord] = {}
        # The user's images go only to subtasks that need vision (the router gave those a vision model).
        self.images = images or []

    async def __call__(
        self, task: TaskSpec, route: RouteDecision, deps: dict[str, TaskOutcome], attempt: int
    ) -> TaskOutcome:
        result = await self._agent(task, route, deps, note=None)
        if result.status == "failed":
            return TaskOutcome(task_id=task.id, status="failed", error=result.reason, cost_usd=result.cost_usd)
        cost = result.cost_usd
        failures = self._check(task.id, result.edits)
        record = self.records.setdefault(task.id, TaskRecord())
        record.validation_first_try = not failures if attempt == 1 else record.validation_first_try
        if failures:
            output = "\n".join(f"{f.name}: {f.output}" for f in failures)
            fixed = await self._agent(task, route, deps, note=FIX_NOTE.format(output=output))
            cost += fixed.cost_usd
            failures = self._check(task.id, result.edits + fixed.edits)
            if failures:
                raise ValidationFailed(f"validation still fails after a fix round: {failures[0].output[:300]}")
            result = fixed
        record.edits = sorted(set(record.edits) | set(result.edits))
        return TaskOutcome(task_id=task.id, status="done", output=result.text, cost_usd=cost)

    async def _agent(self, task: TaskSpec, route: RouteDecision, deps: dict[str, TaskOutcome],
                     note: str | None) -> AgentResult:
        services, settings = self.services, self.services.settings
        agent = settings.agents[route.agent]
        toolbox = ToolBox(
            self.workspace, agent.tools, settings.checks,
            search_code=self.context.search_code if self.context.available else None,
            bus=services.bus, run_id=self.run_id, task_id=task.id,
            redactor=services.redactor if settings.privacy.redact_secrets else None,
        )
        return await run_agent(
            services.gateway, task=task, alias=route.alias, agent=agent,
            system_prompt=load_prompt(agent.prompt, services.repo_root),
            context=self.context.task_context(task),
            dependency_outputs={dep_id: outcome.output for dep_id, outcome in deps.items()},
            toolbox=toolbox, limits=self.limits,
            supports_tools=settings.models[route.alias].supports("tools"),
            run_id=self.run_id, extra_note=note, agent_name=route.agent,
            images=self.images if task.needs_vision else None,
        )

    def _check(self, task_id: str, paths: list[str]) -> list[CheckResult]:
        existing = sorted({p for p in paths if self.workspace.exists(p)})
        if not existing:
            return []
        results = syntax_check(self.workspace.root, existing)
        for result in results:
            self.services.bus.publish(ValidationFinished(
                run_id=self.run_id, task_id=task_id, step=result.name, ok=result.ok, output=result.output[:2000],
            ))
        return [r for r in results if not r.ok]
