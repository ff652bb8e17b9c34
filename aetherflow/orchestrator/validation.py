"""The run-wide validation: the configured check commands (tests, lint) on the finished worktree.

A failing check goes to one fix round (a debugging subtask routed like any other, shown the failure output),
then the checks run again; their final state goes into the run's result either way.
"""

from __future__ import annotations

from aetherflow.errors import AetherError
from aetherflow.events import TaskStateChanged
from aetherflow.orchestrator.context import RunContext
from aetherflow.orchestrator.executor import TaskExecutor
from aetherflow.orchestrator.plan import TaskSpec
from aetherflow.orchestrator.router import Router
from aetherflow.orchestrator.validation_run import run_checks
from aetherflow.services import Services
from aetherflow.workspace.validate import CheckResult
from aetherflow.workspace.worktree import Workspace

FIX_TASK_ID = "fix-checks"
# TaskSpec.description holds at most 2000 characters: the failures' output tails share what the header leaves.
# (A longer description raised a ValidationError that ended the whole run; the fix agent can run_check itself
# for the full output.)
DESCRIPTION_CHARS = 2000
FIX_HEADER = "The project's checks fail after this run's changes. Make them pass without weakening the tests.\n\n"


def fix_description(failed: list[CheckResult]) -> str:
    """The fix task's description: the header, then each failed check's name and the tail of its output, all
    within DESCRIPTION_CHARS (the end of a test run's output is where its summary is)."""
    share = max(0, (DESCRIPTION_CHARS - len(FIX_HEADER)) // len(failed) - 2)
    parts = []
    for result in failed:
        name = f"$ {result.name}\n"[:share]
        room = share - len(name)
        parts.append(name + (_line_tail(result.output, room) if room > 0 else ""))
    return (FIX_HEADER + "\n\n".join(parts))[:DESCRIPTION_CHARS]


def _line_tail(text: str, chars: int) -> str:
    """The last `chars` of `text`, starting after a line break when one is near the cut: a secret cut in two
    would pass the redactor as two unrecognisable halves."""
    if len(text) <= chars:
        return text
    tail = text[-chars:]
    newline = tail.find("\n", 0, 300)
    return tail[newline + 1 :] if newline != -1 else tail


async def final_checks(services: Services, workspace: Workspace, context: RunContext, run_id: str,
                       router: Router) -> list[CheckResult]:
    """Run the checks; on failure one fix round, then the checks again. Returns the final results."""
    results = await run_checks(services, workspace, run_id)
    failed = [r for r in results if not r.ok]
    if not failed or not workspace.changeset().files:
        return results
    task = TaskSpec(
        id=FIX_TASK_ID, type="debugging", description=fix_description(failed),
        acceptance_criteria=[f"`{r.name}` passes" for r in failed],
    )
    try:
        route = router.route(task, services.gateway.budget.remaining_usd)
        services.bus.publish(TaskStateChanged(run_id=run_id, task_id=FIX_TASK_ID, state="running",
                                              agent=route.agent, alias=route.alias))
        outcome = await TaskExecutor(services, workspace, context, run_id)(task, route, {}, 1)
        services.bus.publish(TaskStateChanged(run_id=run_id, task_id=FIX_TASK_ID, state=outcome.status,
                                              agent=route.agent, alias=route.alias, detail=outcome.error))
    except AetherError as exc:
        services.bus.publish(TaskStateChanged(run_id=run_id, task_id=FIX_TASK_ID, state="failed", detail=exc.message))
        return results
    return await run_checks(services, workspace, run_id)
