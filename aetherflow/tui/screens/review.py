"""The review screen: accept or reject each file and hunk, confirm exactly what will be written, then apply.

Applying goes through the pipeline's `apply` (the same atomic apply as the CLI) in a thread, so the screen stays
responsive; on disk afterwards are exactly the accepted hunks. Leaving asks whether to discard the change set or
keep it for later.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from aetherflow.errors import AetherError
from aetherflow.tui.contracts import PipelineLike, RunResultLike, ScreenExit
from aetherflow.tui.review_state import ApplyPlan, ReviewState
from aetherflow.tui.screens.dialogs import Choice, ChoiceDialog, HelpScreen, confirm
from aetherflow.tui.theme import themed
from aetherflow.tui.widgets.diff_view import DiffView, HunkView
from aetherflow.tui.widgets.file_table import FileTable
from aetherflow.workspace.apply import AppliedRecord, Selection
from aetherflow.workspace.changeset import FileChange
from aetherflow.workspace.invisible import reveal_invisible

HUNK = Binding.Group("hunk ✓✗")
FILE = Binding.Group("file ✓✗")
ALL = Binding.Group("all ✓✗")
MOVE = Binding.Group("hunks")
REVIEW_KEYS = [
    ("up / down", "choose a file"),
    ("j / k", "next / previous hunk of the file"),
    ("y / n / space", "apply / skip / toggle the current hunk"),
    ("a / r", "apply / skip the whole file"),
    ("A / R", "apply / skip everything"),
    ("enter", "apply what is marked ✓ (asks first, listing exactly what changes)"),
    ("q / escape", "leave: discard the change set or keep it for later"),
]


class ReviewScreen(Screen[ScreenExit]):
    """Reviews one run's change set and applies the accepted part."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "hunk(True)", "apply hunk", group=HUNK),
        Binding("n", "hunk(False)", "skip hunk", group=HUNK),
        Binding("space", "toggle_hunk", "toggle hunk", show=False),
        Binding("a", "file(True)", "apply file", group=FILE),
        Binding("r", "file(False)", "skip file", group=FILE),
        Binding("A", "all(True)", "apply all", group=ALL),
        Binding("R", "all(False)", "skip all", group=ALL),
        Binding("j,right_square_bracket", "move_hunk(1)", "next hunk", group=MOVE),
        Binding("k,left_square_bracket", "move_hunk(-1)", "previous hunk", group=MOVE),
        Binding("enter", "apply", "Apply…", priority=True),
        Binding("q,escape", "leave", "Leave"),
        Binding("question_mark", "help", "Help"),
    ]

    def __init__(
        self,
        result: RunResultLike,
        pipeline: PipelineLike,
        validations: list[tuple[str, bool]] | None = None,
        repo_root: Path | None = None,
        *,
        commit: bool = False,
    ) -> None:
        super().__init__()
        self.repo_root = repo_root
        self.commit = commit
        if result.changeset is None:
            raise AetherError(f"Run {result.run_id} has no change set to review.", "Start a new run.")
        self.result = result
        self.pipeline = pipeline
        self.validations = list(validations or [])
        self.state = ReviewState(result.changeset)
        self.current_hunk: int | None = None
        self._applying = False

    def compose(self) -> ComposeResult:
        yield Static("", id="review-head")
        yield FileTable(id="files")
        yield DiffView(id="diff")
        yield Footer()

    async def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.redraw())
        self.redraw()
        await self._open_file(self.result.changeset.files[0])  # type: ignore[union-attr]

    # ----- current file and hunk ----------------------------------------------------------------------------

    @property
    def current_file(self) -> FileChange:
        """The file under the file table's cursor."""
        path = self.query_one(FileTable).selected_key()
        change = self.state.changeset.get(path) if path else None
        return change or self.state.changeset.files[0]

    async def _open_file(self, change: FileChange) -> None:
        diff = self.query_one(DiffView)
        if diff.path != change.path:
            await diff.show_file(change)
            self.current_hunk = change.hunks[0].index if change.hunks else None
        self.redraw()

    async def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        change = self.state.changeset.get(str(event.row_key.value))
        if change is not None:
            await self._open_file(change)

    def on_hunk_view_clicked(self, event: HunkView.Clicked) -> None:
        self.current_hunk = event.index
        self.redraw()

    def redraw(self) -> None:
        """Redraw the header, the file list and the diff's decisions from the review state."""
        self.query_one("#review-head", Static).update(self._head())
        self.query_one(FileTable).show(self.state, self.validations)
        self.query_one(DiffView).draw(self.state, self.current_hunk)

    def _head(self) -> Text:
        changeset = self.state.changeset
        plan = self.state.plan()
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"Review run {changeset.run_id}", style="bold")
        text.append(f"  {len(changeset.files)} file(s) +{changeset.added} -{changeset.removed}")
        failed = [step for step, ok in self.validations if not ok]
        if self.validations:
            style = themed(self.app, "$text-error" if failed else "$text-success")
            text.append(f"  checks: {len(failed)} failed" if failed else "  checks passed", style=style)
        if changeset.held_back:
            # Protected files the run tried to change are never applied; the user must know they were left out.
            shown = ", ".join(reveal_invisible(path) for path in changeset.held_back)
            text.append(f"  held back (protected, never applied): {shown}", style=themed(self.app, "$text-warning"))
        text.append("\n")
        accent = themed(self.app, "$text-accent")
        text.append(f"Will apply {len(plan.files)} of {len(changeset.files)} file(s)", style=accent)
        if plan.rejected:
            text.append(f", leaving {len(plan.rejected)} unchanged", style="dim")
        return text

    # ----- decisions ----------------------------------------------------------------------------------------

    def action_hunk(self, accepted: bool) -> None:
        """Apply or skip the current hunk (the whole file when it has no hunks), then move to the next one."""
        change = self.current_file
        if self.current_hunk is None:
            self.state.set_file(change.path, accepted)
        else:
            self.state.set_hunk(change.path, self.current_hunk, accepted)
            self._step_hunk(change, 1)
        self.redraw()

    def action_toggle_hunk(self) -> None:
        change = self.current_file
        if self.current_hunk is None:
            self.state.set_file(change.path, self.state.file_decision(change.path) == "rejected")
        else:
            self.state.toggle_hunk(change.path, self.current_hunk)
        self.redraw()

    def action_file(self, accepted: bool) -> None:
        self.state.set_file(self.current_file.path, accepted)
        self.redraw()

    def action_all(self, accepted: bool) -> None:
        self.state.set_all(accepted)
        self.redraw()

    def action_move_hunk(self, step: int) -> None:
        self._step_hunk(self.current_file, step)
        self.redraw()

    def _step_hunk(self, change: FileChange, step: int) -> None:
        indices = [h.index for h in change.hunks]
        if self.current_hunk in indices:
            position = indices.index(self.current_hunk) + step
            self.current_hunk = indices[max(0, min(position, len(indices) - 1))]

    # ----- apply and leave ----------------------------------------------------------------------------------

    def action_apply(self) -> None:
        """Ask, listing exactly what will be written, then apply."""
        if self._applying:
            return
        plan = self.state.plan()
        if plan.empty:
            self.notify("Nothing is marked ✓. Mark a file or hunk with y or a, or press q to leave.",
                        title="Nothing to apply", severity="warning")
            return
        where = f"Apply to {self.repo_root}:" if self.repo_root else "Apply to your working tree:"
        after = "They are then committed (only these files). " if self.commit else ""
        body = [where, *("  " + line for line in plan.lines()), "",
                f"Nothing else changes. {after}`aether undo` restores the files exactly."]
        self.app.push_screen(confirm("Apply these changes?", body, yes="Apply"), lambda answer: self._confirmed(
            answer, plan))

    def _confirmed(self, answer: str | None, plan: ApplyPlan) -> None:
        if answer == "yes":
            self._applying = True
            self._apply(self.state.selection(), plan)

    @work(thread=True, exclusive=True, group="apply")
    def _apply(self, selection: Selection, plan: ApplyPlan) -> None:
        try:
            record = self.pipeline.apply(self.result, selection, commit=self.commit)
        except AetherError as exc:
            self.app.call_from_thread(self._apply_failed, exc)
            return
        self.app.call_from_thread(self._applied, record, plan)

    def _applied(self, record: AppliedRecord, plan: ApplyPlan) -> None:
        names = ", ".join(record.files)
        unchanged = f" Left unchanged: {', '.join(plan.rejected)}." if plan.rejected else ""
        self.dismiss(ScreenExit(
            outcome="applied", run_id=self.result.run_id,
            message=f"Applied {len(record.files)} file(s) from run {self.result.run_id}: {names}.",
            hint="Undo with `aether undo`." + unchanged,
        ))  # fmt: skip

    def _apply_failed(self, exc: AetherError, title: str = "Not applied") -> None:
        self._applying = False
        self.notify(f"{exc.message}\n→ {exc.hint}" if exc.hint else exc.message, title=title,
                    severity="error", timeout=30)

    def action_leave(self) -> None:
        """Ask whether to discard the change set or keep it for later."""
        if self._applying:
            return
        choices = [
            Choice(key="d", label="Discard", value="discard", variant="error"),
            Choice(key="k", label="Keep for later", value="keep", variant="primary"),
            Choice(key="b", label="Back", value="back"),
        ]
        body = ["Nothing has been applied.",
                "Discard removes the change set; keep lets you re-open it from the history."]
        self.app.push_screen(ChoiceDialog("Leave the review?", body, choices), self._on_leave)

    def _on_leave(self, answer: str | None) -> None:
        run_id = self.result.run_id
        if answer == "discard":
            self._applying = True  # no other action until the discard is done
            self._discard()
        elif answer == "keep":
            self.dismiss(ScreenExit(
                outcome="kept", run_id=run_id, message=f"Kept the change set of run {run_id}; nothing was applied.",
                hint=f"Re-open it from the history in `aether tui`, or see it with `aether runs show {run_id}`.",
            ))  # fmt: skip

    @work(thread=True, exclusive=True, group="apply")
    def _discard(self) -> None:
        # Removing the run's worktree runs git, which can take a moment: off the UI thread.
        try:
            self.pipeline.discard(self.result)
        except AetherError as exc:
            self.app.call_from_thread(self._apply_failed, exc, "Not discarded")
            return
        run_id = self.result.run_id
        message = f"Discarded the change set of run {run_id}; nothing was applied."
        self.app.call_from_thread(self.dismiss, ScreenExit(outcome="discarded", run_id=run_id, message=message))

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen("Review", REVIEW_KEYS, "✓ will be applied, ✗ left as it is, ◐ in part."))
