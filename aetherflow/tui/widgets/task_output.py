"""The selected subtask in full: what it is, where it runs and why, and its live output (text, tool calls)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from aetherflow.runboard import TaskRow
from aetherflow.tui.fmt import STATE_STYLE
from aetherflow.tui.theme import themed

EMPTY = "Waiting for the plan…"


def head_text(row: TaskRow, state_style: str) -> Text:
    """The panel's first lines: id, state, agent and model, the routing reason, the latest detail."""
    text = Text(no_wrap=False)
    text.append(row.task_id, style="bold")
    text.append(f"  {row.state}", style=state_style)
    text.append(f"  {row.agent or '-'} on {row.alias or '-'}")
    if row.depends_on:
        text.append(f"  after {', '.join(row.depends_on)}", style="dim")
    if row.description:
        text.append(f"\n{row.description}")
    if row.reason:
        text.append(f"\nwhy: {row.reason}", style="dim")
    if row.detail:
        text.append(f"\n{row.detail}", style=state_style if row.state in ("failed", "retrying") else "dim")
    return text


class TaskOutput(Vertical):
    """Shows one TaskRow; follows the end of the output unless the user scrolled up."""

    def compose(self) -> ComposeResult:
        yield Static(EMPTY, id="task-head")
        with VerticalScroll(id="task-scroll"):
            yield Static("", id="task-body")

    def on_mount(self) -> None:
        self._shown: tuple[str, Text] | None = None
        self._body = ""

    def show(self, row: TaskRow | None) -> None:
        """Display `row` (None: nothing selected yet)."""
        if row is None:
            return
        head = head_text(row, themed(self.app, STATE_STYLE[row.state]))
        if self._shown != (row.task_id, head):
            self._shown = (row.task_id, head)
            self.query_one("#task-head", Static).update(head)
        body = row.output_tail.strip("\n") or "(no output yet)"
        if body != self._body:
            self._body = body
            scroll = self.query_one("#task-scroll", VerticalScroll)
            at_end = scroll.scroll_y >= scroll.max_scroll_y - 1
            self.query_one("#task-body", Static).update(Text(body))
            if at_end:
                scroll.scroll_end(animate=False)
