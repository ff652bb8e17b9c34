"""Running the project's configured check commands in a run's worktree, each result published as an event."""

from __future__ import annotations

from aetherflow.events import ValidationFinished
from aetherflow.services import Services
from aetherflow.workspace.validate import CheckResult, run_check
from aetherflow.workspace.worktree import Workspace


async def run_checks(services: Services, workspace: Workspace, run_id: str) -> list[CheckResult]:
    """Every configured check command, in order, in the worktree; each result published."""
    results = []
    for name, command in services.settings.checks.commands.items():
        result = await run_check(workspace.root, name, command, services.settings.checks.timeout_s)
        services.bus.publish(ValidationFinished(run_id=run_id, step=f"check {name}", ok=result.ok,
                                                output=result.output[-2000:]))
        results.append(result)
    return results
