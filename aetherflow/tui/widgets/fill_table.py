"""A row-cursor DataTable whose one flexible column fills the width, updated by key with only changed cells redrawn.

DataTable has no flexible column, so the table rebuilds its columns on resize from the rows it remembers.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import events
from textual.widgets import DataTable

MIN_FILL = 8

Row = tuple[str, tuple[Text, ...]]


class FillTable(DataTable[Text]):
    """Subclasses set COLUMNS: (label, key, width), with width 0 for the column that takes the rest."""

    COLUMNS: ClassVar[list[tuple[str, str, int]]] = []

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", **kwargs)  # type: ignore[arg-type]
        self._cells: dict[str, tuple[Text, ...]] = {}

    def on_mount(self) -> None:
        self._add_columns()

    def _add_columns(self) -> None:
        fixed = sum(width for _, _, width in self.COLUMNS)
        # Each column has `cell_padding` on both sides; two cells stay free for the vertical scrollbar.
        spare = self.size.width - fixed - 2 * self.cell_padding * len(self.COLUMNS) - 2
        for label, key, width in self.COLUMNS:
            self.add_column(label, key=key, width=width or max(MIN_FILL, spare))

    def on_resize(self, event: events.Resize) -> None:
        cursor = self.cursor_row
        self.clear(columns=True)
        self._add_columns()
        for key, cells in self._cells.items():
            self.add_row(*cells, key=key)
        if self.row_count:
            self.move_cursor(row=min(cursor, self.row_count - 1))

    def set_rows(self, rows: list[Row], restyle: bool = False) -> None:
        """Show exactly `rows`, in order: appended rows are added, changed cells rewritten, anything else rebuilt."""
        keys = [key for key, _ in rows]
        if keys[: len(self._cells)] != list(self._cells):
            self._rebuild(rows)
            return
        for key, cells in rows:
            previous = self._cells.get(key)
            if previous is None:
                self.add_row(*cells, key=key)
            else:
                for (_, column, _), value, old in zip(self.COLUMNS, cells, previous, strict=True):
                    if restyle or value != old:
                        self.update_cell(key, column, value)
            self._cells[key] = cells

    def _rebuild(self, rows: list[Row]) -> None:
        cursor = self.cursor_row
        self.clear()
        self._cells = dict(rows)
        for key, cells in rows:
            self.add_row(*cells, key=key)
        if self.row_count:
            self.move_cursor(row=min(max(cursor, 0), self.row_count - 1))

    def selected_key(self) -> str | None:
        """The key of the row under the cursor, or None when the table is empty."""
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
