"""The plan: a graph of typed subtasks, modelled on the brief's TaskSpecification, and its checks.

The planner model fills these models (their JSON schema is its output schema, with every string and list bounded
so that even a small model cannot ramble); `check_plan` then verifies what a schema cannot express: unique ids,
known dependencies, no cycles, known task types. An agent hint the router does not know is ignored by the router,
not a problem of the plan.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, Field, model_validator

from aetherflow.config.models import Settings

MAX_TASKS = 30
# What a planner model may write per description (bounded so that a small model cannot ramble), and what a subtask
# may carry: a one-subtask plan holds the user's whole request, which can be a page of instructions.
MODEL_DESCRIPTION_CHARS = 2000
MAX_DESCRIPTION_CHARS = 50_000
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
    description: str = Field(min_length=1, max_length=MAX_DESCRIPTION_CHARS)
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

    @model_validator(mode="before")
    @classmethod
    def _coerce(cls, data: Any) -> Any:
        """Accept what small planners write for what the schema allows: a string where a list or an object is
        expected, an unknown enum value or an out-of-range number (the default or the bound is used). A plan is
        rejected for what it means (ids, cycles), never for a shape that has one obvious reading."""
        return coerce_task(data) if isinstance(data, dict) else data


_LIST_FIELDS = ("context_files", "depends_on", "acceptance_criteria")
_SCORES = ("complexity", "speed_priority", "cost_sensitivity")


def coerce_task(data: dict[str, Any]) -> dict[str, Any]:
    """`data` (a subtask as a model wrote it) with the shapes the schema allows one reading of made right."""
    out = dict(data)
    for name in _LIST_FIELDS:
        if isinstance(out.get(name), str):
            out[name] = [out[name]] if out[name].strip() else []
    expected = out.get("expected_output")
    if isinstance(expected, str):
        out["expected_output"] = {"format": expected} if expected in get_args(OutputFormat) else {}
    elif isinstance(expected, dict) and expected.get("format") not in (None, *get_args(OutputFormat)):
        out["expected_output"] = {k: v for k, v in expected.items() if k != "format"}
    if out.get("input_format") not in (None, *get_args(InputFormat)):
        out.pop("input_format")
    steps = out.get("fallback_strategy")
    if isinstance(steps, list):
        kept = [s for s in steps if s in get_args(FallbackStep)][:4]
        out["fallback_strategy"] = kept or list(DEFAULT_FALLBACK)
    for name in _SCORES:
        out[name] = _score(out[name]) if name in out else 0.5
    return out


def _score(value: Any) -> float:
    """A 0..1 score from what a model wrote: a number (clamped) or a numeric string; 0.5 when unreadable."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.5
    return min(1.0, max(0.0, number)) if number == number else 0.5


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
    for task in plan.tasks:
        for dep in task.depends_on:
            if dep not in ids:
                problems.append(f"task '{task.id}' depends on '{dep}', which is not a task of this plan")
            elif dep == task.id:
                problems.append(f"task '{task.id}' depends on itself")
        if known_types and task.type not in known_types:
            problems.append(f"task '{task.id}' has type '{task.type}'; known types: {', '.join(sorted(known_types))}")
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
