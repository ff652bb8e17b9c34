"""The planner: the orchestrator agent turns a request and its repository context into a checked Plan.

The system prompt and the repository context come first and are marked as the stable prefix, so providers with
prompt caching (Anthropic) bill them at the cached rate when the same repository is planned again. The gateway
already repairs a reply that does not match the Plan schema; what the schema cannot express (unique ids, known
dependencies, no cycles, known types and agents) gets one repair round here, with the exact problems.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, Field, create_model

from aetherflow.config.models import AgentConfig, Settings
from aetherflow.errors import ConfigError, PlanError
from aetherflow.llm.types import CallRequest, CallResult, Message
from aetherflow.orchestrator.plan import MAX_TASKS, MODEL_DESCRIPTION_CHARS, FallbackStep, Plan, TaskSpec, check_plan
from aetherflow.prompts import load_prompt

PLANNER_AGENT = "orchestrator"


class PlanContext(BaseModel):
    """What the planner is shown about the repository besides the request."""

    repo_map: str
    chunks: list[str]
    past_solutions: list[str] = Field(default_factory=list)
    images: int = Field(default=0, ge=0, description="How many images the user attached to the request.")


class PlanGateway(Protocol):
    """The part of the model gateway the planner uses."""

    async def complete(self, request: CallRequest) -> CallResult: ...


async def make_plan(
    gateway: PlanGateway,
    settings: Settings,
    request: str,
    context: PlanContext,
    *,
    run_id: str | None = None,
    repo_root: Path | None = None,
) -> Plan:
    """Ask the orchestrator agent for a plan of `request`; one repair round if the plan has problems.

    Raises PlanError naming every remaining problem when the repaired plan is still invalid. `repo_root` lets a
    repository override the shipped orchestrator prompt.
    """
    agent = planner_agent(settings)
    messages = plan_messages(settings, agent, request, context, repo_root)
    schema = plan_schema(settings)
    plan = await _ask(gateway, messages, run_id, schema)
    problems = check_plan(plan, settings)
    if not problems:
        return plan
    messages = [*messages, Message(role="assistant", content=plan.model_dump_json()),
                Message(role="user", content=repair_text(problems))]
    repaired = await _ask(gateway, messages, run_id, schema)
    remaining = check_plan(repaired, settings)
    if remaining:
        raise PlanError(
            "The orchestrator's plan is still invalid after a repair round: " + "; ".join(remaining) + ".",
            "Run it again with a more specific request, or give the orchestrator agent a stronger model "
            f"(`aether agents edit {PLANNER_AGENT} --model ALIAS`).",
        )
    return repaired


SINGLE_TASK_ID = "task"
# A single subtask already had its chances (candidates, fix rounds): escalating is what is left to try.
SINGLE_TASK_FALLBACK: list[FallbackStep] = ["next_agent", "fail"]


def single_task_plan(settings: Settings, request: str) -> Plan:
    """The plan of a request done as one subtask, without a planning call: the request is the description, the
    routing table's default task type routes it. What a small planner adds to a small request is mostly risk."""
    task = TaskSpec(
        id=SINGLE_TASK_ID, type=settings.routing.default_task_type, description=request.strip(),
        fallback_strategy=list(SINGLE_TASK_FALLBACK),
    )
    return Plan(summary="Done as one subtask (planning.mode).", tasks=[task])


def planner_agent(settings: Settings) -> AgentConfig:
    """The orchestrator agent's configuration, or a clear error when it is missing or disabled."""
    agent = settings.agents.get(PLANNER_AGENT)
    if agent is None or not agent.enabled:
        raise ConfigError(
            f"Planning needs the '{PLANNER_AGENT}' agent, which is missing or disabled.",
            f"Enable it in aetherflow.toml ([agents.{PLANNER_AGENT}] enabled = true) or add it with "
            "`aether agents add`.",
        )
    return agent


def plan_messages(
    settings: Settings, agent: AgentConfig, request: str, context: PlanContext, repo_root: Path | None = None
) -> list[Message]:
    """System prompt and repository context (the cacheable prefix), then the routing vocabulary and the request."""
    return [
        Message(role="system", content=load_prompt(agent.prompt, repo_root), cache_prefix=True),
        Message(role="user", content=context_text(context), cache_prefix=True),
        Message(role="user", content=request_text(settings, request, context.images)),
    ]


def context_text(context: PlanContext) -> str:
    """The repository map, retrieved chunks and past solutions as one Markdown document."""
    parts = []
    if context.repo_map.strip():
        parts.append("# Repository map\n\n" + context.repo_map.strip())
    if context.chunks:
        parts.append("# Retrieved code\n\n" + "\n\n---\n\n".join(c.strip() for c in context.chunks))
    if context.past_solutions:
        parts.append("# Past solutions in this repository\n\n" + "\n\n---\n\n".join(
            s.strip() for s in context.past_solutions))
    return "\n\n".join(parts) or "# Repository context\n\n(none available: the repository is not indexed)"


def request_text(settings: Settings, request: str, images: int) -> str:
    """The task types and agents the plan may use, the limits, and the request itself."""
    types = "\n".join(
        f"- {rule.task_type}: {rule.description or 'no description'}" for rule in settings.routing.rules
    )
    agents = "\n".join(
        f"- {name}: {agent.description or agent.role}"
        for name, agent in settings.agents.items()
        if agent.enabled and name != PLANNER_AGENT
    )
    lines = [
        "Task types (set `type` of every subtask to one of these):", types, "",
        "Agents (optional `agent` hint per subtask; the router makes the final choice):", agents, "",
        f"At most {MAX_TASKS} subtasks. Ids are short (letters, digits, '_', '.', '-'); `depends_on` lists only ids "
        "of this plan and never forms a cycle.",
    ]
    if images:
        lines.append(f"The user attached {images} image(s); set needs_vision = true on subtasks that must see them.")
    lines += ["", "Request:", request.strip()]
    return "\n".join(lines)


def repair_text(problems: list[str]) -> str:
    """The repair round's message: every problem, exactly, and what to send back."""
    listed = "\n".join(f"- {p}" for p in problems)
    return (
        f"Your plan has these problems:\n{listed}\n\n"
        "Reply with the whole corrected plan as JSON, fixing every problem and keeping the rest unchanged."
    )


def plan_schema(settings: Settings) -> type[Plan]:
    """Plan, with each subtask's `type` limited to the routing table's task types, so that a model with a
    JSON-schema mode (or a grammar, for the local model) cannot invent one. Instances are still Plans."""
    types = tuple(rule.task_type for rule in settings.routing.rules)
    if not types:
        return Plan
    typed_task = create_model(
        "TaskSpec", __base__=TaskSpec,
        type=(Literal[types], Field(description="A task type of the routing table.")),  # type: ignore[valid-type]
        description=(str, Field(min_length=1, max_length=MODEL_DESCRIPTION_CHARS)),
    )
    return create_model(
        "Plan", __base__=Plan, tasks=(list[typed_task], Field(min_length=1, max_length=MAX_TASKS)),  # type: ignore[valid-type]
    )


async def _ask(gateway: PlanGateway, messages: list[Message], run_id: str | None, schema: type[Plan]) -> Plan:
    result = await gateway.complete(
        CallRequest(messages=messages, agent=PLANNER_AGENT, output_schema=schema, run_id=run_id)
    )
    if not isinstance(result.parsed, Plan):
        # The planner offers no tools, so the gateway either parses the reply (a call to a tool nobody offered
        # included: it is repaired like any other) or raises StructuredOutputError; anything else is its bug.
        raise TypeError(f"the gateway returned {type(result.parsed).__name__} for a Plan request")
    return Plan.model_validate(result.parsed.model_dump())
