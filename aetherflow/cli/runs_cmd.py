"""`aether runs` (history), `aether runs show ID`, `aether runs apply ID`, and `aether undo`.

Run ids are long, so every ID argument also takes a unique prefix. History and details come from the ledger;
the change set and routes from the run's folder under `.aetherflow/runs/`.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from aetherflow.cli import app
from aetherflow.cli._output import console, err_console, print_json
from aetherflow.errors import UsageError

if TYPE_CHECKING:
    from pathlib import Path

    from aetherflow.ledger.queries import RunDetail
    from aetherflow.orchestrator.pipeline import Pipeline, RunResult
    from aetherflow.services import Services

runs_app = typer.Typer(name="runs", help="Past runs: list them, show one, review and apply one.")
app.add_typer(runs_app)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
RunIdArg = Annotated[str, typer.Argument(help="The run's id, or a prefix of it that only one run has.")]
REQUEST_CHARS = 60


def _pipeline() -> Pipeline:
    from aetherflow.orchestrator.pipeline import Pipeline
    from aetherflow.services import build_services

    return Pipeline(build_services())


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else "-"


def _ledger(services: Services):  # noqa: ANN202 - Ledger, imported lazily
    services.require_repo()
    assert services.ledger is not None
    return services.ledger


# ---- aether runs -------------------------------------------------------------------------------------------


@runs_app.callback(invoke_without_command=True)
def runs(
    ctx: typer.Context,
    as_json: JsonFlag = False,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many recent runs to list.")] = 20,
) -> None:
    """List recent runs: id, when, status, cost, files accepted/rejected, request."""
    if ctx.invoked_subcommand is not None:
        return
    from aetherflow.ledger.queries import list_runs

    rows = list_runs(_ledger(_pipeline().services), limit)
    if as_json:
        print_json([row.model_dump() for row in rows])
        return
    if not rows:
        console().print('No runs yet. Start one with `aether run "your request"`.')
        return
    table = Table(show_edge=False, pad_edge=False)
    for name in ("id", "when", "status", "cost", "accepted/rejected", "request"):
        table.add_column(name, justify="right" if name == "cost" else "left", no_wrap=name != "request")
    for row in rows:
        request = " ".join(row.request.split())
        request = request if len(request) <= REQUEST_CHARS else request[: REQUEST_CHARS - 1] + "…"
        table.add_row(row.run_id, _when(row.started_at), row.status, f"${row.cost_usd:.4f}",
                      f"{row.accepted}/{row.rejected}", escape(request))
    console().print(table)


# ---- aether runs show ----------------------------------------------------------------------------------------


@runs_app.command("show")
def show(run_id: RunIdArg, as_json: JsonFlag = False) -> None:
    """Show one run: plan, subtasks (agent, model, status, attempts), calls (tokens, cost, latency), the diff."""
    from aetherflow.cli.run_cmd import resolve_run_id
    from aetherflow.ledger.queries import run_detail

    pipeline = _pipeline()
    full_id = resolve_run_id(pipeline.services, run_id)
    detail = run_detail(_ledger(pipeline.services), full_id)
    assert detail is not None, "find_run_id only returns ids of recorded runs"
    result = pipeline.load_result(full_id) if pipeline.store.folder(full_id).is_dir() else None
    routes = _saved_routes(pipeline, full_id)
    validations = trace_validations(pipeline, full_id)
    if as_json:
        print_json({**detail.model_dump(), "routes": routes, "validations": validations,
                    "diff": result.changeset.diff() if result is not None and result.changeset else ""})
        return
    _print_detail(detail, routes, validations, result)


def _saved_routes(pipeline: Pipeline, run_id: str) -> dict[str, dict[str, Any]]:
    try:
        return pipeline.store.load(run_id).routes
    except UsageError:
        return {}


def trace_validations(pipeline: Pipeline, run_id: str) -> list[dict[str, Any]]:
    """The run's validation steps from its JSON-lines trace (the last result of each step)."""
    from aetherflow.events import EVENT_ADAPTER, ValidationFinished

    path = pipeline.store.folder(run_id) / "trace.jsonl"
    if not path.is_file():
        return []
    last: dict[tuple[str | None, str], dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if '"validation"' not in line:
            continue
        event = EVENT_ADAPTER.validate_json(line)
        if isinstance(event, ValidationFinished):
            last[(event.task_id, event.step)] = {"task_id": event.task_id, "step": event.step, "ok": event.ok,
                                                 "output": event.output}
    return list(last.values())


def _print_detail(detail: RunDetail, routes: dict[str, dict[str, Any]], validations: list[dict[str, Any]],
                  result: RunResult | None) -> None:
    from aetherflow.cli.review import show_diff
    from aetherflow.workspace.invisible import reveal_invisible  # model-written text must not steer the terminal

    con, run = console(), detail.run
    con.print(f"[bold]Run {run.run_id}[/]  {run.status}  started {_when(run.started_at)}  "
              f"cost ${run.cost_usd:.4f}  {run.calls} call(s)  accepted {run.accepted} / rejected {run.rejected}")
    con.print(f"[bold]Request:[/] {escape(run.request)}")
    if run.message:
        con.print(escape(reveal_invisible(run.message)))
    _print_plan(detail.plan, routes)
    if detail.tasks:
        con.print(_tasks_table(detail.tasks))
    if detail.calls:
        con.print(_calls_table(detail.calls))
    for check in validations:
        mark = "[green]✓[/]" if check["ok"] else "[red]✗[/]"
        con.print(f"{mark} {escape(check['step'])}" + (f" [dim]({escape(check['task_id'])})[/]" if check["task_id"] else ""))
    if detail.summary:
        con.print("[bold]Summary[/]\n" + escape(reveal_invisible(detail.summary)))
    if result is not None and result.changeset is not None and result.changeset.files:
        for change in result.changeset.files:
            show_diff(con, change)


def _print_plan(plan: dict[str, Any] | None, routes: dict[str, dict[str, Any]]) -> None:
    from aetherflow.cli.plan_view import render_plan_tree
    from aetherflow.orchestrator.plan import Plan
    from aetherflow.orchestrator.router import RouteDecision

    if plan is None:
        console().print("[dim]No plan was made.[/]")
        return
    decisions = {k: RouteDecision.model_validate(v) for k, v in routes.items()}
    console().print(render_plan_tree(Plan.model_validate(plan), decisions))


def _tasks_table(tasks: list[dict[str, Any]]) -> Table:
    table = Table(title="Subtasks", show_edge=False, pad_edge=False)
    for name in ("task", "type", "agent", "model", "status", "attempts", "first try", "cost", "error"):
        table.add_column(name, justify="right" if name in ("attempts", "cost") else "left")
    for t in tasks:
        first = {None: "-", 1: "passed", 0: "failed"}[t["validation_first_try"]]
        table.add_row(escape(t["task_id"]), t["task_type"] or "-", t["agent"] or "-", t["alias"] or "-",
                      t["status"], str(t["attempts"]), first, f"${t['cost_usd']:.4f}", escape(t["error"] or ""))
    return table


def _calls_table(calls: list[dict[str, Any]]) -> Table:
    table = Table(title="Calls", show_edge=False, pad_edge=False)
    for name in ("time", "task", "agent", "model", "status", "tokens in/out", "cost", "latency", "ttft", "notes"):
        table.add_column(name, justify="right" if name in ("cost", "latency", "ttft") else "left")
    for c in calls:
        notes = [n for n in ("cache hit" if c["cache_hit"] else "", f"{c['retries']} retries" if c["retries"] else "",
                             f"fell back from {c['fallbacks']}" if c["fallbacks"] not in ("[]", None) else "",
                             c["error"] or "") if n]
        table.add_row(
            dt.datetime.fromtimestamp(c["ts"]).strftime("%H:%M:%S"), c["task_id"] or "(run)", c["agent"] or "-",
            c["alias"], c["status"], f"{c['prompt_tokens']:,}/{c['completion_tokens']:,}", f"${c['cost_usd']:.4f}",
            f"{c['latency_s']:.2f}s" if c["latency_s"] is not None else "-",
            f"{c['ttft_s']:.2f}s" if c["ttft_s"] is not None else "-", escape("; ".join(notes)),
        )
    return table


# ---- aether runs apply ---------------------------------------------------------------------------------------


@runs_app.command("apply")
def apply(
    run_id: RunIdArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply every changed file without asking.")] = False,
    commit: Annotated[bool, typer.Option("--commit", help="Commit the applied files with a generated message.")] = False,
) -> None:
    """Review a finished run's change set file by file and apply what you accept."""
    from aetherflow.cli.review import print_result, review_and_apply, run_cost
    from aetherflow.cli.run_cmd import resolve_run_id
    from aetherflow.workspace.apply import recover_pending

    pipeline = _pipeline()
    note = recover_pending(pipeline.repo_root)
    if note:
        err_console().print(f"[yellow]Recovered an interrupted operation:[/] {escape(note)}")
    full_id = resolve_run_id(pipeline.services, run_id)
    result = pipeline.load_result(full_id)
    _check_reviewable(result)
    con = console()
    print_result(con, result, run_cost(pipeline.services, full_id))
    for check in trace_validations(pipeline, full_id):
        con.print(("[green]✓[/] " if check["ok"] else "[red]✗[/] ") + escape(check["step"]))
    ask = (lambda prompt: con.input(escape(prompt))) if sys.stdin.isatty() else None
    review_and_apply(con, pipeline, result, yes=yes, commit=commit, ask=ask)


def _check_reviewable(result: RunResult) -> None:
    run_id = result.run_id
    if result.status == "applied":
        raise UsageError(f"Run {run_id} was already applied.", "`aether undo` reverts the last applied run.")
    if result.status == "discarded":
        raise UsageError(f"Run {run_id} was discarded, so its changes are gone.", "Run the request again.")
    if result.status != "review":
        raise UsageError(f"Run {run_id} has no change set to review (status: {result.status}).",
                         f"Continue it with `aether run --resume {run_id}`.")
    if result.changeset is None or not result.changeset.files:
        raise UsageError(f"Run {run_id} changed no file, so there is nothing to apply.", "Run a new request.")


# ---- aether undo ---------------------------------------------------------------------------------------------


def _record_undo(repo_root: Path, run_id: str) -> None:
    """Mark the run undone in the ledger, so that stats no longer count it as a success."""
    from aetherflow import paths
    from aetherflow.ledger.store import Ledger

    ledger_path = paths.state_dir(repo_root) / "ledger.sqlite"
    if ledger_path.is_file():
        ledger = Ledger(ledger_path)
        try:
            ledger.record_undo(run_id)
        finally:
            ledger.close()


@app.command()
def undo(as_json: JsonFlag = False) -> None:
    """Revert the last applied run exactly; refuses, naming them, if those files changed since."""
    from aetherflow.cli._output import require_repo_root
    from aetherflow.workspace.apply import commits_since_apply, recover_pending, undo_last

    repo_root = require_repo_root()
    note = recover_pending(repo_root)
    if note:
        err_console().print(f"[yellow]Recovered an interrupted operation:[/] {escape(note)}")
    record = undo_last(repo_root)
    _record_undo(repo_root, record.run_id)
    removed = [path for path in record.files if record.before.get(path) is None]
    restored = [path for path in record.files if path not in removed]
    commits = commits_since_apply(repo_root, record)
    if commits:  # on stderr, so that it reaches the user with --json too
        err_console().print(escape(_committed_note(repo_root, commits)), soft_wrap=True)
    if as_json:
        print_json({"run_id": record.run_id, "restored": restored, "removed": removed})
        return
    con = console()
    con.print(f"Undid run {record.run_id}: {len(record.files)} file(s) back as they were before it was applied.")
    for path in restored:
        con.print(f"  restored {escape(path)}")
    for path in removed:
        con.print(f"  removed {escape(path)} (the run had created it)")


def _committed_note(repo_root: Path, commits: list[str]) -> str:
    """Undo restores files only: when the change was committed (and maybe pushed), say what that leaves."""
    from aetherflow.workspace.apply import remote_branches_with

    remotes = remote_branches_with(repo_root, commits[-1])
    pushed = f", pushed to {', '.join(remotes)}" if remotes else ""
    return (
        f"Note: the change was committed since it was applied (commit {', '.join(commits)}{pushed}). Undo "
        "restored your working tree only: the commit stays in history and these files now differ from HEAD. "
        f"Commit them to record the reversal, as `git revert {commits[-1]}` would; do not rewrite pushed history."
    )
