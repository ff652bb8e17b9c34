"""The run's last step: a short summary of what changed, why, and how it was validated.

It is stored in the ledger so later runs retrieve it as a past solution (the brief's knowledge base). When the
summary call cannot be made (budget reached, provider down), a plain summary is built from the outcomes instead:
the run's result never depends on this optional call.
"""

from __future__ import annotations

from aetherflow.errors import AetherError
from aetherflow.llm.types import CallRequest, Message
from aetherflow.orchestrator.plan import Plan
from aetherflow.orchestrator.scheduler import TaskOutcome
from aetherflow.services import Services
from aetherflow.workspace.changeset import ChangeSet
from aetherflow.workspace.validate import CheckResult

SUMMARY_TOKENS = 600
SUMMARY_PROMPT = (
    "Summarise this completed run for the developer in at most 8 short lines: what changed, why, and how it was "
    "validated. Plain text, no preamble."
)


def plain_summary(plan: Plan, outcomes: dict[str, TaskOutcome], changeset: ChangeSet | None,
                  checks: list[CheckResult]) -> str:
    """A summary built without a model: subtask results, files changed, check results."""
    done = [o for o in outcomes.values() if o.status == "done"]
    lines = [f"{plan.summary}", f"{len(done)} of {len(outcomes)} subtasks done."]
    lines += [f"- {o.task_id}: {o.status}{': ' + o.error if o.error else ''}" for o in outcomes.values()]
    if changeset is not None and changeset.files:
        lines.append("Files: " + ", ".join(f"{f.path} (+{f.added} -{f.removed})" for f in changeset.files))
    lines += [f"Check {c.name}: {'passed' if c.ok else 'failed'}" for c in checks]
    return "\n".join(lines)


def needs_synthesis(plan: Plan) -> bool:
    """A summary call is worth its cost only when several subtasks' results must be put together: one subtask's
    own final answer already says what it did (and a local model would spend many seconds repeating it)."""
    return len(plan.tasks) > 1


def one_task_summary(outcomes: dict[str, TaskOutcome], plain: str) -> str:
    """The summary of a one-subtask run: the agent's own words, then the plain facts."""
    said = next((o.output.strip() for o in outcomes.values() if o.output.strip()), "")
    return f"{said}\n\n{plain}" if said else plain


async def synthesize(services: Services, run_id: str, request: str, plain: str) -> str:
    """Ask the orchestrator agent for the summary; fall back to `plain` when the call fails."""
    request_text = f"Request: {request}\n\nWhat happened:\n{plain}"
    call = CallRequest(
        agent="orchestrator",
        messages=[Message(role="system", content=SUMMARY_PROMPT), Message(role="user", content=request_text)],
        max_tokens=SUMMARY_TOKENS,
        run_id=run_id,
    )
    try:
        result = await services.gateway.complete(call)
    except AetherError:
        return plain
    return result.text.strip() or plain
