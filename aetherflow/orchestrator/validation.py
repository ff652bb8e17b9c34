"""The run-wide validation: the configured check commands (tests, lint) on the finished worktree.

A failing check goes to one fix round (a debugging subtask routed like any other, shown the failure output),
then the checks run again; their final state goes into the run's result either way.
"""

from __future__ import annotations

from aetherflow.errors import AetherError
from aetherflow.events import TaskStateChanged, ValidationFinished
from aetherflow.orchestrator.context import RunContext
from aetherflow.orchestrator.executor import TaskExecutor
from aetherflow.orchestrator.plan import TaskSpec
from aetherflow.orchestrator.router import Router
from aetherflow.services import Services
from aetherflow.workspace.validate import CheckResult, run_check
from aetherflow.workspace.worktree import Workspace

FIX_TASK_ID = "fix-checks"
OUTPUT_IN_TASK = 6000


async def run_checks(services: Services, workspace: Workspace, run_id: str) -> list[CheckResult]:
    """Every configured check command, in order, in the worktree; each result published."""
    results = []
    for name, command in services.settings.checks.commands.items():
        result = await run_check(workspace.root, name, command, services.settings.checks.timeout_s)
        services.bus.publish(ValidationFinished(run_id=run_id, step=f"check {name}", ok=result.ok,
                                                output=result.output[-2000:]))
        results.append(result)
    return results


async def final_checks(services: Services, workspace: Workspace, context: RunContext, run_id: str,
                       router: Router) -> list[CheckResult]:
    """Run the checks; on failure one fix round, then the checks again. Returns the final results."""
    results = await run_checks(services, workspace, run_id)
    failed = [r for r in results if not r.ok]
    if not failed or not workspace.changeset().files:
        return results
    task = TaskSpec(
        id=FIX_TASK_ID, type="debugging",
        description="The project's checks fail after this run's changes. Make them pass without weakening "
        "the tests.\n\n" + "\n\n".join(f"$ {r.name}\n{r.output[-OUTPUT_IN_TASK:]}" for r in failed),
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
