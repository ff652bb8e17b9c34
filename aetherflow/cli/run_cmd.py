"""`aether plan` and `aether run`: make a plan, or run the whole pipeline and review its change set.

Exit codes of `aether run`: 0 when the run completed (its change set applied, or left for review, or the models
produced no usable edit, which is their failure and not the pipeline's); 1 when the run stopped before the end
(a provider outage, the budget, a failed plan); 2 for a usage or configuration error; 130 when cancelled with
Ctrl-C. The user's files are only written after review, through `Pipeline.apply`.
"""

from __future__ import annotations

import asyncio
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.markup import escape

from aetherflow.cli import app
from aetherflow.cli._output import console, err_console, print_json
from aetherflow.errors import UsageError

if TYPE_CHECKING:
    from aetherflow.errors import AetherError
    from aetherflow.orchestrator.pipeline import Pipeline, RunResult
    from aetherflow.runboard import RunBoard
    from aetherflow.services import Services

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]

# The agent's wording when a model answered without a usable edit (aetherflow/orchestrator/agent.py).
NO_USABLE_EDIT = "no usable edit"
CANCELLED_EXIT = 130

# Leading bytes of the image formats vision models accept.
_IMAGE_MAGIC: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
]


# ---- aether plan -------------------------------------------------------------------------------------------


@app.command()
def plan(
    request: Annotated[str, typer.Argument(help="What to do, in quotes.")],
    as_json: JsonFlag = False,
) -> None:
    """Make a plan for REQUEST and show it as a tree of routed subtasks with estimated cost (nothing runs)."""
    from aetherflow.cli.plan_view import render_plan_tree
    from aetherflow.orchestrator.pipeline import Pipeline
    from aetherflow.services import build_services

    pipeline = Pipeline(build_services())
    with nullcontext() if as_json else err_console().status("Planning…"):
        made, routes = asyncio.run(_plan(pipeline, request))
    if not as_json:
        console().print(render_plan_tree(made, routes))
        return
    costs = [route.estimated_cost_usd for route in routes.values()]
    print_json({
        "plan": made.model_dump(),
        "routes": {task_id: route.model_dump() for task_id, route in routes.items()},
        "estimated_cost_usd": None if any(c is None for c in costs) else sum(c for c in costs if c is not None),
    })


async def _plan(pipeline: Pipeline, request: str):  # noqa: ANN202 - the Pipeline.plan tuple
    try:
        return await pipeline.plan(request)
    finally:
        await pipeline.services.gateway.aclose()


# ---- aether run --------------------------------------------------------------------------------------------


@app.command()
def run(
    request: Annotated[str | None, typer.Argument(help="What to do, in quotes (omit with --resume).")] = None,
    budget: Annotated[float | None, typer.Option("--budget", help="Spending limit for this run, in USD.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply every changed file without asking.")] = False,
    commit: Annotated[bool, typer.Option("--commit", help="Commit the applied files with a generated message.")] = False,
    no_tui: Annotated[bool, typer.Option("--no-tui", help="Show progress as a plain live table.")] = False,
    as_json: JsonFlag = False,
    image: Annotated[
        list[Path] | None, typer.Option("--image", help="An image the request refers to (PNG, JPEG, GIF, WebP); repeat.")
    ] = None,
    resume: Annotated[str | None, typer.Option("--resume", help="Continue an interrupted run (id or prefix).")] = None,
) -> None:
    """Plan REQUEST, run its subtasks in parallel in an isolated worktree, validate, then review and apply."""
    from aetherflow.orchestrator.pipeline import Pipeline
    from aetherflow.runboard import RunBoard

    if (request is None) == (resume is None):
        raise UsageError("Give either a request or --resume ID, not both and not neither.",
                         'Example: `aether run "add a logout_all function"`, or `aether run --resume ID`.')
    images = check_images(image or [])
    services = _services(budget)
    pipeline = Pipeline(services)
    _print_recovery(pipeline.repo_root)
    _print_demo_model_note(pipeline)
    resume_id = resolve_run_id(services, resume) if resume is not None else None
    if _wants_tui(no_tui=no_tui, as_json=as_json, yes=yes):
        from aetherflow.tui.entry import run_request

        raise typer.Exit(run_request(services, request or "", images, resume_id, commit=commit))
    result = _run_plain(pipeline, RunBoard(), request or "", images=images, resume_id=resume_id, live=not as_json)
    if as_json:
        _json_review(pipeline, result, yes=yes, commit=commit)
    else:
        _plain_review(pipeline, result, yes=yes, commit=commit)


def _print_demo_model_note(pipeline: Pipeline) -> None:
    """Say plainly, once, when the run's edits would fall to the bundled 135M demo model."""
    from aetherflow.llm.local_model import demo_fallback_note
    from aetherflow.llm.types import CallRequest

    note = demo_fallback_note(pipeline.services.settings)
    if note is None:
        return
    chain = pipeline.services.gateway.chain_for(CallRequest(agent="coder", messages=[]))
    bundled = {a for a, m in pipeline.services.settings.models.items() if m.embedded and m.gguf is None}
    if chain and chain[0] in bundled:
        err_console().print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)


def _wants_tui(*, no_tui: bool, as_json: bool, yes: bool) -> bool:
    """The TUI needs a person at an interactive terminal; --yes means nobody reviews, so it stays plain."""
    return not (no_tui or as_json or yes) and sys.stdin.isatty() and sys.stdout.isatty()


def _plain_review(pipeline: Pipeline, result: RunResult, *, yes: bool, commit: bool) -> None:
    """The result, then --yes (apply all), a file-by-file review on a terminal, or a hint to review later."""
    from aetherflow.cli.review import print_result, review_and_apply, run_cost

    con = console()
    print_result(con, result, run_cost(pipeline.services, result.run_id))
    ask = (lambda prompt: con.input(escape(prompt))) if sys.stdin.isatty() else None
    review_and_apply(con, pipeline, result, yes=yes, commit=commit, ask=ask)


def _json_review(pipeline: Pipeline, result: RunResult, *, yes: bool, commit: bool) -> None:
    """One JSON object on stdout; everything is applied with --yes, nothing without."""
    from aetherflow.cli.review import later_hint, result_json, review_and_apply, run_cost

    end = review_and_apply(err_console(), pipeline, result, yes=True, commit=commit, ask=None) if yes else None
    payload = result_json(result, run_cost(pipeline.services, result.run_id), pipeline.store.load(result.run_id).routes)
    payload["applied"] = end.record.files if end is not None and end.record is not None else []
    if end is None and result.changeset is not None and result.changeset.files:
        payload["hint"] = later_hint(result.run_id)
    print_json(payload)


def _services(budget: float | None) -> Services:
    from aetherflow.services import build_services

    if budget is not None and budget <= 0:
        raise UsageError(f"--budget must be more than 0 USD (got {budget:g}).", "Example: `--budget 0.50`.")
    return build_services(flags={"budget": {"per_run_usd": budget}} if budget is not None else None)


def _print_recovery(repo_root: Path) -> None:
    """An apply or undo interrupted by a crash is completed or rolled back first; say what was done."""
    from aetherflow.workspace.apply import recover_pending

    note = recover_pending(repo_root)
    if note:
        err_console().print(f"[yellow]Recovered an interrupted operation:[/] {escape(note)}")


def check_images(files: list[Path]) -> list[Path]:
    """The --image files, each checked to exist and to start like a PNG, JPEG, GIF or WebP image."""
    for path in files:
        if not path.is_file():
            raise UsageError(f"--image {path}: no such file.", "Check the path (it is relative to this folder).")
        with path.open("rb") as handle:
            head = handle.read(16)
        webp = head[:4] == b"RIFF" and head[8:12] == b"WEBP"
        if not webp and not any(head.startswith(magic) for magic, _ in _IMAGE_MAGIC):
            raise UsageError(f"--image {path} is not an image (expected PNG, JPEG, GIF or WebP).",
                             "Pass a screenshot or picture file, or leave --image out.")
    return [path.resolve() for path in files]


def resolve_run_id(services: Services, prefix: str) -> str:
    """The full id of the one run whose id starts with `prefix`, or a UsageError saying what to type."""
    from aetherflow.ledger.queries import find_run_id

    found = find_run_id(services.ledger, prefix) if services.ledger is not None else None
    if found is None:
        raise UsageError(f"No single run matches '{prefix}' (none, or more than one).",
                         "List runs with `aether runs` and give more of the id.")
    return found


# ---- the plain path (the TUI branches off beside it) -------------------------------------------------------


def _run_plain(pipeline: Pipeline, board: RunBoard, request: str, *, images: list[Path], resume_id: str | None,
               live: bool) -> RunResult:
    """Run with the live console table (`live`), or silently for --json; Ctrl-C cancels cleanly (exit 130).

    A run that stops before the end exits 1 with its message; one whose models produced no usable edit shows
    why and exits 0 (see the module docstring).
    """
    from aetherflow.cli.run_view import LiveRunView
    from aetherflow.errors import AetherError

    unsubscribe = pipeline.services.bus.subscribe(board.apply)
    progress = err_console()
    try:
        with LiveRunView(board, progress) if live else nullcontext():
            return asyncio.run(_execute(pipeline, request, images, resume_id))
    except KeyboardInterrupt:
        _cancelled(board.run_id)
    except AetherError as exc:
        if board.run_id is None:  # it failed before the run began (e.g. an unknown --resume id)
            raise
        _stopped(pipeline, board.run_id, exc, as_json=not live)
    finally:
        unsubscribe()


async def _execute(pipeline: Pipeline, request: str, images: list[Path], resume_id: str | None) -> RunResult:
    try:
        return await pipeline.run(request, images=images or None, resume_id=resume_id)
    finally:
        await pipeline.services.gateway.aclose()


def _cancelled(run_id: str | None) -> NoReturn:
    resume = f"; resume with `aether run --resume {run_id}`" if run_id else ""
    err_console().print(f"[yellow]cancelled; nothing applied{escape(resume)}[/]")
    raise typer.Exit(CANCELLED_EXIT)


def no_usable_edit(result: RunResult) -> bool:
    """True when the run completed but its models produced nothing usable (no budget stop, no outage)."""
    failed = [o for o in result.outcomes.values() if o.status == "failed"]
    budget = [o for o in result.outcomes.values() if o.status == "skipped" and o.error.startswith("budget reached")]
    return bool(failed) and not budget and all(NO_USABLE_EDIT in o.error for o in failed)


def _stopped(pipeline: Pipeline, run_id: str, exc: AetherError, *, as_json: bool) -> NoReturn:
    """A run that ended without a change set: show its outcomes and the reason; exit 0 or the error's code."""
    from aetherflow.cli.review import print_result, result_json, run_cost

    result = pipeline.load_result(run_id)
    code = 0 if no_usable_edit(result) else exc.exit_code
    cost = run_cost(pipeline.services, run_id)
    if as_json:
        payload = result_json(result, cost, pipeline.store.load(run_id).routes)
        print_json({**payload, "applied": [], "error": {"message": exc.message, "hint": exc.hint}})
        raise typer.Exit(code)
    print_result(console(), result, cost, message=code == 0)
    if code == 0:
        raise typer.Exit(0)
    if f"--resume {run_id}" not in f"{exc.message} {exc.hint}":
        err_console().print(f"[dim]The run is saved; continue it with `aether run --resume {run_id}`.[/]")
    raise exc
