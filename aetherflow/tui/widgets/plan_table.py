"""The plan as a table of subtasks: state, agent, model, tokens, cost and why, with a row cursor.

This table is redrawn up to ten times a second while a run streams, so it is a Line API widget that renders
each row once per change and reuses it otherwise. (A DataTable re-renders every visible cell after any single
cell update, which at that rate made key presses wait behind the drawing.)
"""

from __future__ import annotations

from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from aetherflow.runboard import TaskRow
from aetherflow.tui.fmt import STATE_MARK, STATE_STYLE, money, tokens
from aetherflow.tui.theme import themed

# (label, width, right-aligned); width 0 takes what is left of the line.
COLUMNS: list[tuple[str, int, bool]] = [
    ("task", 12, False),
    ("state", 12, False),
    ("agent", 9, False),
    ("model", 9, False),
    ("tokens", 5, True),
    ("cost", 7, True),
    ("why", 0, False),
]
COLUMN_INDEX = {label: i for i, (label, _, _) in enumerate(COLUMNS)}
MIN_WHY = 8
Cell = tuple[str, str]  # (text, style spec with theme variables)


def depth_of(rows: list[TaskRow]) -> dict[str, int]:
    """How deep each subtask sits in the dependency graph (0: depends on nothing), to indent it like a tree."""
    known = {row.task_id: row for row in rows}
    depth: dict[str, int] = {}

    def visit(task_id: str, seen: frozenset[str]) -> int:
        if task_id in depth:
            return depth[task_id]
        deps = [d for d in known[task_id].depends_on if d in known and d not in seen]
        depth[task_id] = 1 + max((visit(d, seen | {task_id}) for d in deps), default=-1)
        return depth[task_id]

    for row in rows:
        visit(row.task_id, frozenset())
    return depth


def row_cells(row: TaskRow, depth: int) -> tuple[Cell, ...]:
    """The cells of one subtask's line."""
    state = row.state + (f" #{row.attempt}" if row.attempt > 1 else "")
    indent = "  " * min(depth - 1, 3) + "└ " if depth else ""
    why = row.detail if row.detail and row.state != "done" else row.reason
    return (
        (indent + row.task_id, ""),
        (f"{STATE_MARK[row.state]} {state}", STATE_STYLE[row.state]),
        (row.agent or "-", ""),
        (row.alias or "-", ""),
        (tokens(row.tokens_in + row.tokens_out), ""),
        (money(row.cost_usd), ""),
        (why or "", "dim"),
    )


def fit(text: str, width: int, right: bool) -> str:
    """`text` in exactly `width` cells: cut with an ellipsis, padded on the left or the right."""
    if cell_len(text) > width:
        return set_cell_size(text, max(width - 1, 0)) + "…" if width else ""
    return " " * (width - cell_len(text)) + text if right else set_cell_size(text, width)


def widths(total: int) -> list[int]:
    """Each column's width for a line of `total` cells (one cell of padding on both sides of each column)."""
    fixed = sum(width for _, width, _ in COLUMNS) + 2 * len(COLUMNS)
    return [width or max(MIN_WHY, total - fixed) for _, width, _ in COLUMNS]


class PlanTable(ScrollView, can_focus=True):
    """One line per subtask under a fixed header; up/down (or a click) moves the cursor."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"plan-table--header", "plan-table--cursor"}
    DEFAULT_CSS = """
    PlanTable { height: auto; overflow-x: hidden; }
    PlanTable > .plan-table--header { text-style: bold; background: $panel; }
    PlanTable > .plan-table--cursor { background: $block-cursor-blurred-background; }
    PlanTable:focus > .plan-table--cursor {
        background: $block-cursor-background; color: $block-cursor-foreground; text-style: bold;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("pageup", "move(-8)", "Page up", show=False),
        Binding("pagedown", "move(8)", "Page down", show=False),
        Binding("home", "move(-1000000)", "First", show=False),
        Binding("end", "move(1000000)", "Last", show=False),
    ]

    class Highlighted(Message):
        """The user moved the cursor to `task_id`."""

        def __init__(self, task_id: str) -> None:
            super().__init__()
            self.task_id = task_id

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.task_ids: list[str] = []
        self.cells: dict[str, tuple[Cell, ...]] = {}
        self.cursor = 0
        self.manual = False
        """True once the user moved the cursor: the run screen then stops following the running subtask."""
        self._strips: dict[str, tuple[tuple[object, ...], Strip]] = {}

    # ----- data ---------------------------------------------------------------------------------------------

    def show(self, rows: list[TaskRow]) -> None:
        """Bring the table in line with `rows` (the board's snapshot); repaints only when something changed."""
        depth = depth_of(rows)
        cells = {row.task_id: row_cells(row, depth.get(row.task_id, 0)) for row in rows}
        ids = [row.task_id for row in rows]
        if ids == self.task_ids and cells == self.cells:
            return
        self.task_ids, self.cells = ids, cells
        self.cursor = min(self.cursor, max(len(ids) - 1, 0))
        self.virtual_size = Size(1, len(ids) + 1)  # never scrolls sideways: the last column is cut instead
        self.refresh()

    def cell(self, task_id: str, column: str) -> str:
        """The text shown in one cell (tests and screen readers of the snapshot use it)."""
        return self.cells[task_id][COLUMN_INDEX[column]][0]

    def selected_task(self) -> str | None:
        """The task id under the cursor, or None when the table is empty."""
        return self.task_ids[self.cursor] if self.task_ids else None

    def follow(self, task_id: str) -> None:
        """Put the cursor on `task_id` without counting it as the user's choice."""
        if task_id in self.task_ids:
            self._set_cursor(self.task_ids.index(task_id))

    # ----- cursor -------------------------------------------------------------------------------------------

    def _set_cursor(self, index: int) -> None:
        index = max(0, min(index, len(self.task_ids) - 1))
        if index == self.cursor:
            return
        self.cursor = index
        visible = max(self.scrollable_content_region.height - 1, 1)
        if index < self.scroll_y:
            self.scroll_to(y=index, animate=False)
        elif index >= self.scroll_y + visible:
            self.scroll_to(y=index - visible + 1, animate=False)
        self.refresh()

    def action_move(self, step: int) -> None:
        """Move the cursor by `step` rows (clamped)."""
        if not self.task_ids:
            return
        self.manual = True
        self._set_cursor(self.cursor + step)
        self.post_message(self.Highlighted(self.task_ids[self.cursor]))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < 1 or not self.task_ids:
            return
        self.manual = True
        self._set_cursor(int(self.scroll_y) + offset.y - 1)
        self.post_message(self.Highlighted(self.task_ids[self.cursor]))

    # ----- drawing ------------------------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if y == 0:
            header = tuple((label, "") for label, _, _ in COLUMNS)
            style = self.get_component_rich_style("plan-table--header")
            return self._strip(header, width).apply_style(style).apply_style(self.rich_style)
        index = int(self.scroll_y) + y - 1
        if index >= len(self.task_ids):
            return Strip.blank(width, self.rich_style)
        task_id = self.task_ids[index]
        selected = index == self.cursor
        key = (self.cells[task_id], width, selected, self.has_focus, self.app.theme)
        cached = self._strips.get(task_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        cursor = self.get_component_rich_style("plan-table--cursor") if selected else None
        strip = self._strip(self.cells[task_id], width, cursor).apply_style(self.rich_style)
        self._strips[task_id] = (key, strip)
        return strip

    def _strip(self, cells: tuple[Cell, ...], width: int, cursor: Style | None = None) -> Strip:
        """One line of cells; on the cursor's line the cursor's colours win over the cells' own, for contrast."""
        segments = []
        for (text, spec), column_width, (_, _, right) in zip(cells, widths(width), COLUMNS, strict=True):
            style = Style.parse(themed(self.app, spec)) if spec else Style.null()
            segments.append(Segment(" " + fit(text, column_width, right) + " ", style + cursor if cursor else style))
        return Strip(segments).adjust_cell_length(width, cursor)
