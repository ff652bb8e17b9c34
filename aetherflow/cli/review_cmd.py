"""`aether review [--staged | --range A..B] [--json]`: the pre-commit review, run by hand (or, with --hook, by the
pre-commit framework). Exit status: 0 when nothing blocks, 1 for a staged secret or a finding at hooks.block_on.
"""

from __future__ import annotations

from typing import Annotated

import typer

from aetherflow.cli import app
from aetherflow.cli._output import print_json
from aetherflow.errors import UsageError


@app.command("review")
def review_command(
    staged: Annotated[bool, typer.Option("--staged", help="Review the staged changes (the default).")] = False,
    revision_range: Annotated[
        str | None, typer.Option("--range", metavar="A..B", help="Review a commit range instead, e.g. main..HEAD.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    hook: Annotated[
        bool, typer.Option("--hook", help="Behave as the git pre-commit hook (for the pre-commit framework).")
    ] = False,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=0.1, help="Time budget in seconds (default: hooks.timeout_s).")
    ] = None,
) -> None:
    """Review a diff for bug risks, leftover debug code, syntax errors and secrets; print file:line findings.

    Secrets in the added lines are found locally, with no model call. The model review is bounded by the time
    budget: past it, or when no model is available, the review says so and exits 0.
    """
    from aetherflow.hooks.pre_commit import exit_now, run_hook

    if hook:
        exit_now(run_hook())
    if staged and revision_range:
        raise UsageError("--staged and --range ask for two different diffs.", "Give one of them (or neither).")
    from aetherflow.review.findings import render
    from aetherflow.review.runner import review
    from aetherflow.services import build_services

    services = build_services()
    report = review(
        services.require_repo(), services.settings, services.environ, revision_range=revision_range, timeout_s=timeout
    )
    if as_json:
        print_json(report.model_dump(mode="json"))
    else:
        for line in render(report):
            typer.echo(line)
    if report.outcome == "unreviewed":
        exit_now(report.exit_code)  # a worker thread left behind by the time budget must not delay the exit
    raise typer.Exit(report.exit_code)
