"""The plan: a graph of typed subtasks, modelled on the brief's TaskSpecification, and its checks.

The planner model fills these models (their JSON schema is its output schema, with every string and list bounded
so that even a small model cannot ramble); `check_plan` then verifies what a schema cannot express: unique ids,
known dependencies, no cycles, known agents and task types.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from aetherflow.config.models import Settings

MAX_TASKS = 30
TaskId = str
InputFormat = Literal["code", "text", "json", "mixed"]
OutputFormat = Literal["edits", "text", "json"]
FallbackStep = Literal["retry_same_agent", "next_agent", "simplify_and_retry", "fail"]
DEFAULT_FALLBACK: list[FallbackStep] = ["retry_same_agent", "next_agent", "simplify_and_retry", "fail"]


class ExpectedOutput(BaseModel):
    """What a subtask must produce: edits to files, a text report, or JSON, with constraints."""

    format: OutputFormat = "edits"
    constraints: list[str] = Field(default_factory=list, max_length=8)


class TaskSpec(BaseModel):
    """One subtask of a plan."""

    id: TaskId = Field(pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    type: str = Field(max_length=40, description="A task type of the routing table.")
    description: str = Field(min_length=1, max_length=2000)
    input_format: InputFormat = "code"
    expected_output: ExpectedOutput = Field(default_factory=ExpectedOutput)
    context_files: list[str] = Field(default_factory=list, max_length=20)
    agent: str | None = Field(default=None, description="Agent the planner suggests; the router decides.")
    depends_on: list[TaskId] = Field(default_factory=list, max_length=MAX_TASKS)
    acceptance_criteria: list[str] = Field(default_factory=list, max_length=8)
    fallback_strategy: list[FallbackStep] = Field(default_factory=lambda: list(DEFAULT_FALLBACK), max_length=4)
    complexity: float = Field(default=0.5, ge=0, le=1)
    speed_priority: float = Field(default=0.5, ge=0, le=1)
    cost_sensitivity: float = Field(default=0.5, ge=0, le=1)
    needs_vision: bool = False
    estimated_tokens: int = Field(default=2000, ge=0, le=2_000_000)


class Plan(BaseModel):
    """The orchestrator's plan for one request."""

    summary: str = Field(max_length=2000)
    tasks: list[TaskSpec] = Field(min_length=1, max_length=MAX_TASKS)

    def task(self, task_id: TaskId) -> TaskSpec:
        """The task with id `task_id` (KeyError when absent)."""
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise KeyError(task_id)


def check_plan(plan: Plan, settings: Settings) -> list[str]:
    """Every problem of `plan` as an exact sentence the planner can act on; empty when the plan is sound."""
    problems: list[str] = []
    ids = [t.id for t in plan.tasks]
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        problems.append(f"task id '{dup}' is used more than once; ids must be unique")
    known_types = {r.task_type for r in settings.routing.rules}
    enabled_agents = {name for name, a in settings.agents.items() if a.enabled}
    for task in plan.tasks:
        for dep in task.depends_on:
            if dep not in ids:
                problems.append(f"task '{task.id}' depends on '{dep}', which is not a task of this plan")
            elif dep == task.id:
                problems.append(f"task '{task.id}' depends on itself")
        if known_types and task.type not in known_types:
            problems.append(f"task '{task.id}' has type '{task.type}'; known types: {', '.join(sorted(known_types))}")
        if task.agent is not None and task.agent not in enabled_agents:
            problems.append(f"task '{task.id}' names agent '{task.agent}'; known agents: {', '.join(sorted(enabled_agents))}")
    cycle = find_cycle(plan)
    if cycle:
        problems.append("dependencies form a cycle: " + " -> ".join(cycle))
    return problems


def find_cycle(plan: Plan) -> list[TaskId]:
    """One dependency cycle as a list of ids (first id repeated at the end), or [] when the graph is acyclic."""
    graph = {t.id: [d for d in t.depends_on if d != t.id] for t in plan.tasks}
    state: dict[TaskId, int] = {}  # 1 = on the current path, 2 = finished
    path: list[TaskId] = []

    def visit(node: TaskId) -> list[TaskId]:
        state[node] = 1
        path.append(node)
        for dep in graph.get(node, []):
            if state.get(dep) == 1:
                return path[path.index(dep) :] + [dep]
            if dep in graph and dep not in state:
                found = visit(dep)
                if found:
                    return found
        state[node] = 2
        path.pop()
        return []

    for node in graph:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def layers(plan: Plan) -> list[list[TaskId]]:
    """Tasks grouped by depth: every task's dependencies are in earlier layers. The plan must be acyclic."""
    depth: dict[TaskId, int] = {}
    by_id = {t.id: t for t in plan.tasks}

    def depth_of(task_id: TaskId) -> int:
        if task_id not in depth:
            deps = by_id[task_id].depends_on
            depth[task_id] = 1 + max((depth_of(d) for d in deps), default=-1)
        return depth[task_id]

    for task in plan.tasks:
        depth_of(task.id)
    grouped: list[list[TaskId]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for task in plan.tasks:
        grouped[depth[task.id]].append(task.id)
    return grouped
