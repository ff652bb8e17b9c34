"""What `aether run` and `aether runs apply` show after a run, and the per-file review in a plain terminal.

The run's result is printed (summary, change set with +/- per file, validation, cost against the orchestrator
model), then the user decides file by file: [a]ccept, [r]eject, [d]iff, accept [A]ll remaining, reject [R]
all remaining. The exact selection is shown before anything is written, and the write goes through
`Pipeline.apply` (atomic, journalled, undoable). Without a terminal to ask on, nothing is applied and the user
is told how to review later. The prompt is an injected function so the review can be tested without a terminal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax

from aetherflow.workspace.invisible import reveal_invisible

if TYPE_CHECKING:
    from aetherflow.orchestrator.pipeline import Pipeline, RunResult
    from aetherflow.services import Services
    from aetherflow.workspace.apply import AppliedRecord, Selection
    from aetherflow.workspace.changeset import ChangeSet, FileChange

Ask = Callable[[str], str]
ReviewOutcome = Literal["applied", "discarded", "kept", "no_changes"]

INTERRUPTED_EXIT = 130
CHOICES = "[a]ccept / [r]eject / [d]iff / accept [A]ll remaining / reject [R] all remaining"
STATUS_MARK = {"added": "new", "modified": "mod", "deleted": "del"}


@dataclass(frozen=True)
class RunCost:
    """A run's cost and what its successful, uncached calls would have cost on the orchestrator's model."""

    cost_usd: float
    baseline_alias: str
    baseline_usd: float | None

    def line(self) -> str:
        """E.g. `cost $0.0123 · sonnet alone: $0.0456 (saved 73%)`."""
        text = f"cost ${self.cost_usd:.4f}"
        if self.baseline_usd is None:
            return text + f" · {self.baseline_alias}'s price is unknown, so no comparison"
        if self.baseline_usd <= 0:
            return text
        saved = 100.0 * (1 - self.cost_usd / self.baseline_usd)
        return text + f" · {self.baseline_alias} alone: ${self.baseline_usd:.4f} (saved {saved:.0f}%)"


def run_cost(services: Services, run_id: str) -> RunCost:
    """This run's cost from the ledger, and the same token counts priced at the orchestrator model's rates."""
    from aetherflow.llm.pricing import cost_usd, resolve_price
    from aetherflow.llm.types import Usage

    ledger = services.ledger
    alias = services.settings.agents["orchestrator"].model
    if ledger is None:
        return RunCost(0.0, alias, None)
    model = services.settings.models.get(alias)
    price = resolve_price(model) if model is not None else None
    baseline = None
    if price is not None:
        rows = ledger.query(
            "SELECT prompt_tokens, completion_tokens, cached_read_tokens, cache_write_tokens FROM calls "
            "WHERE run_id = ? AND status = 'ok' AND cache_hit = 0",
            run_id,
        )
        baseline = sum(cost_usd(price, Usage(**dict(row))) for row in rows)
    return RunCost(ledger.total_cost_usd(run_id), alias, baseline)


# ---- printing the result ---------------------------------------------------------------------------------


def print_result(con: Console, result: RunResult, cost: RunCost, *, message: bool = True) -> None:
    """Summary, failed subtasks, the change set per file, validation results, the message (unless the caller
    reports it as an error) and the cost line.

    Text that models or check commands wrote passes through `reveal_invisible`: an escape sequence in a summary
    could otherwise rewrite the terminal (erase lines, set the clipboard) and bidi controls could reorder it.
    """
    if result.summary:
        con.print("[bold]Summary[/]")
        con.print(escape(reveal_invisible(result.summary)))
    for outcome in result.outcomes.values():
        if outcome.status != "done":
            error = escape(reveal_invisible(outcome.error))
            con.print(f"[red]✗[/] {escape(outcome.task_id)} {outcome.status}: {error}")
    changeset = result.changeset
    if changeset is not None and changeset.files:
        con.print(f"[bold]Changes[/] ({len(changeset.files)} file(s), +{changeset.added} -{changeset.removed})")
        for change in changeset.files:
            con.print(f"  {STATUS_MARK[change.status]} {escape(reveal_invisible(change.path))} "
                      f"[green]+{change.added}[/] [red]-{change.removed}[/]")
    if changeset is not None and changeset.held_back:
        shown = ", ".join(reveal_invisible(path) for path in changeset.held_back)
        con.print(f"[yellow]Held back (protected: git, CI, hook or AetherFlow configuration):[/] {escape(shown)}. "
                  "AetherFlow never applies changes to these files, not even with --yes; make the change yourself "
                  "if it is needed.", soft_wrap=True)
    for check in result.checks:
        mark = "[green]✓[/]" if check.ok else "[red]✗[/]"
        con.print(f"{mark} check {escape(check.name)} ({check.duration_s:.1f} s)")
        if not check.ok:
            con.print(f"[dim]{escape(reveal_invisible(check.output[-800:]))}[/]")
    if message and result.message:
        con.print(escape(reveal_invisible(result.message)), soft_wrap=True)
    con.print(f"[dim]{escape(cost.line())}[/]")


def show_diff(con: Console, change: FileChange) -> None:
    """One file's diff, syntax-highlighted; bidi, zero-width and control characters shown as code-point markers
    (`<U+202E>`), so a line that would display reordered or hidden is reviewed as it really is."""
    text = reveal_invisible(change.diff())
    con.print(Syntax(text, "diff", theme="ansi_dark", word_wrap=True, background_color="default"))


def selection_lines(changeset: ChangeSet, selection: Selection) -> list[str]:
    """Exactly what applying `selection` writes, one line per file, then the files left unchanged."""
    lines = []
    for change in changeset.files:
        if change.path in selection:
            what = {"added": "create", "deleted": "delete"}.get(change.status, "update")
            lines.append(f"{what} {change.path} (+{change.added} -{change.removed})")
    rejected = [p for p in changeset.paths() if p not in selection]
    if rejected:
        lines.append("leave unchanged: " + ", ".join(rejected))
    return lines


# ---- deciding --------------------------------------------------------------------------------------------


def choose_files(con: Console, changeset: ChangeSet, ask: Ask) -> Selection:
    """Ask about each file in turn; returns the accepted files (whole files). EOFError ends with nothing chosen."""
    selection: Selection = {}
    remaining: Literal["accept", "reject"] | None = None
    total = len(changeset.files)
    for number, change in enumerate(changeset.files, start=1):
        if remaining is None:
            remaining = _decide_file(con, change, f"[{number}/{total}]", ask, selection)
        elif remaining == "accept":
            selection[change.path] = "all"
    return selection


def _decide_file(con: Console, change: FileChange, counter: str, ask: Ask,
                 selection: Selection) -> Literal["accept", "reject"] | None:
    """One file's decision; returns "accept"/"reject" when the answer covers every remaining file too."""
    path = reveal_invisible(change.path)
    label = f"{counter} {STATUS_MARK[change.status]} {path} (+{change.added} -{change.removed})"
    while True:
        answer = ask(f"{label}  {CHOICES}: ").strip()
        if answer == "d":
            show_diff(con, change)
        elif answer in ("a", "A"):
            selection[change.path] = "all"
            return "accept" if answer == "A" else None
        elif answer in ("r", "R"):
            return "reject" if answer == "R" else None
        else:
            con.print(f"[yellow]Please answer a, r, d, A or R[/] (got {escape(answer)!r}).")


def confirm(ask: Ask, question: str) -> bool:
    """A yes/no question whose empty answer means yes."""
    while True:
        answer = ask(f"{question} [Y/n]: ").strip().lower()
        if answer in ("", "y", "yes"):
            return True
        if answer in ("n", "no"):
            return False


# ---- the whole review ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewEnd:
    """How the review ended, and what was written (for the JSON output and the exit message)."""

    outcome: ReviewOutcome
    record: AppliedRecord | None = None


def later_hint(run_id: str) -> str:
    """The command that reviews this run's change set later."""
    return f"Review it later with `aether runs apply {run_id}` (or `aether runs show {run_id}` to see the diff)."


def review_and_apply(con: Console, pipeline: Pipeline, result: RunResult, *, yes: bool, commit: bool,
                     ask: Ask | None) -> ReviewEnd:
    """Apply all (`yes`), review file by file (`ask` given), or leave the change set for later (`ask` None)."""
    changeset = result.changeset
    if changeset is None or not changeset.files:
        return ReviewEnd("no_changes")
    if yes:
        return _apply(con, pipeline, result, {path: "all" for path in changeset.paths()}, commit)
    if ask is None:
        con.print("[yellow]Nothing was applied:[/] there is no terminal to review the changes on. "
                  + escape(later_hint(result.run_id)), soft_wrap=True)
        return ReviewEnd("kept")
    try:
        selection = choose_files(con, changeset, ask)
        if not selection:
            pipeline.discard(result)
            con.print("Every file was rejected; nothing was applied.")
            return ReviewEnd("discarded")
        con.print("[bold]This will be applied:[/]")
        for line in selection_lines(changeset, selection):
            con.print(f"  {escape(line)}")
        if not confirm(ask, "Apply now?"):
            con.print("Nothing was applied. " + escape(later_hint(result.run_id)), soft_wrap=True)
            return ReviewEnd("kept")
    except EOFError:
        con.print("\nThe input ended; nothing was applied. " + escape(later_hint(result.run_id)), soft_wrap=True)
        return ReviewEnd("kept")
    except KeyboardInterrupt:
        con.print("\nReview interrupted; nothing was applied. " + escape(later_hint(result.run_id)), soft_wrap=True)
        raise typer.Exit(INTERRUPTED_EXIT) from None
    return _apply(con, pipeline, result, selection, commit)


def _apply(con: Console, pipeline: Pipeline, result: RunResult, selection: Selection, commit: bool) -> ReviewEnd:
    record = pipeline.apply(result, selection, commit=commit)
    con.print(f"[green]Applied {len(record.files)} file(s):[/] {escape(', '.join(record.files))}")
    if commit:
        con.print("Committed them (only those files).")
    con.print("[dim]`aether undo` reverts this exactly.[/]")
    return ReviewEnd("applied", record)


# ---- JSON ------------------------------------------------------------------------------------------------


def result_json(result: RunResult, cost: RunCost, routes: dict[str, dict] | None = None) -> dict:
    """The run as one JSON-ready object: id, status, plan and routes, outcomes, change set with diffs, checks,
    summary and cost."""
    changeset = result.changeset
    files = [] if changeset is None else [
        {"path": c.path, "status": c.status, "binary": c.binary, "added": c.added, "removed": c.removed,
         "hunks": len(c.hunks), "diff": c.diff()}
        for c in changeset.files
    ]
    return {
        "run_id": result.run_id,
        "status": result.status,
        "message": result.message,
        "plan": result.plan.model_dump() if result.plan is not None else None,
        "routes": routes or {},
        "outcomes": {k: v.model_dump() for k, v in result.outcomes.items()},
        "changeset": {"base_commit": changeset.base_commit if changeset else None, "files": files,
                      "held_back": changeset.held_back if changeset else []},
        "checks": [c.model_dump() for c in result.checks],
        "summary": result.summary,
        "cost": {"cost_usd": cost.cost_usd, "baseline_alias": cost.baseline_alias,
                 "baseline_usd": cost.baseline_usd},
    }
