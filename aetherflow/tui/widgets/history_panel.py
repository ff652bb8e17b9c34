"""Past runs from the ledger: when, outcome, cost, files accepted and rejected; Enter re-opens a change set."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from aetherflow.ledger.queries import RunRow
from aetherflow.tui.fmt import clip, money, when
from aetherflow.tui.theme import themed
from aetherflow.tui.widgets.fill_table import FillTable

STATUS_STYLE = {
    "applied": "$text-success",
    "review": "$text-accent",
    "failed": "$text-error",
    "cancelled": "$text-warning",
    "discarded": "dim",
}
EMPTY = "No runs yet in this repository. Type a request in the Request tab to start one."


class HistoryTable(FillTable):
    """One row per run, newest first, keyed by run id."""

    COLUMNS: ClassVar[list[tuple[str, str, int]]] = [
        ("when", "when", 16),
        ("status", "status", 9),
        ("cost", "cost", 7),
        ("✓/✗", "files", 5),
        ("request", "request", 0),
    ]


class HistoryPanel(Vertical):
    """The history table and a line about the highlighted run."""

    class Reopen(Message):
        """The user asked to re-open run `run_id`'s change set."""

        def __init__(self, run_id: str) -> None:
            super().__init__()
            self.run_id = run_id

    def compose(self) -> ComposeResult:
        yield HistoryTable(id="history-table")
        yield Static(EMPTY, id="history-detail")

    def on_mount(self) -> None:
        self.runs: dict[str, RunRow] = {}

    def show(self, runs: list[RunRow]) -> None:
        """Replace the rows with `runs` (most recent first)."""
        self.runs = {run.run_id: run for run in runs}
        rows = []
        for run in runs:
            rows.append((run.run_id, (
                Text(when(run.started_at)),
                Text(run.status, style=themed(self.app, STATUS_STYLE.get(run.status, ""))),
                Text(money(run.cost_usd), justify="right"),
                Text(f"{run.accepted}/{run.rejected}", justify="right"),
                Text(clip(run.request, 200), no_wrap=True, overflow="ellipsis"),
            )))  # fmt: skip
        table = self.query_one(HistoryTable)
        table.set_rows(rows, restyle=True)
        self._describe(table.selected_key())

    def _describe(self, run_id: str | None) -> None:
        detail = self.query_one("#history-detail", Static)
        run = self.runs.get(run_id) if run_id else None
        if run is None:
            detail.update(EMPTY if not self.runs else "")
            return
        text = Text(f"{run.run_id}  ", style="bold")
        text.append(f"{run.calls} call(s)  ")
        if run.message:
            text.append(clip(run.message, 160))
        text.append("\nEnter re-opens its change set for review.", style="dim")
        detail.update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._describe(str(event.row_key.value))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.post_message(self.Reopen(str(event.row_key.value)))
