"""The review's list of changed files: decision, path, lines added and removed, kind of change, checks."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text

from aetherflow.tui.fmt import DECISION_MARK, DECISION_STYLE
from aetherflow.tui.review_state import ReviewState
from aetherflow.tui.theme import themed
from aetherflow.tui.widgets.fill_table import FillTable

STATUS_LABEL = {"added": "new", "modified": "changed", "deleted": "deleted"}


def file_checks(path: str, validations: list[tuple[str, bool]]) -> bool | None:
    """The syntax check of `path` in this run (True passed, False failed), or None when none ran."""
    results = [ok for step, ok in validations if step == f"syntax:{path}"]
    return None if not results else results[-1]


class FileTable(FillTable):
    """One row per changed file, keyed by path."""

    COLUMNS: ClassVar[list[tuple[str, str, int]]] = [
        ("", "decision", 1),
        ("file", "path", 0),
        ("+", "added", 5),
        ("-", "removed", 5),
        ("change", "status", 7),
        ("check", "check", 5),
    ]

    def show(self, state: ReviewState, validations: list[tuple[str, bool]]) -> None:
        """Redraw every file's row from the review's decisions."""
        rows = []
        for change in state.changeset.files:
            decision = state.file_decision(change.path)
            check = file_checks(change.path, validations)
            check_cell = Text("-", style="dim") if check is None else Text(
                "✓ ok" if check else "✗ bad", style=themed(self.app, "$text-success" if check else "$text-error")
            )
            size = ("bin", "") if change.binary else (f"+{change.added}", f"-{change.removed}")
            rows.append((change.path, (
                Text(DECISION_MARK[decision], style=themed(self.app, DECISION_STYLE[decision])),
                Text(change.path, no_wrap=True, overflow="ellipsis",
                     style="dim strike" if decision == "rejected" else ""),
                Text(size[0], justify="right", style=themed(self.app, "$text-success")),
                Text(size[1], justify="right", style=themed(self.app, "$text-error")),
                Text(STATUS_LABEL.get(change.status, change.status)),
                check_cell,
            )))  # fmt: skip
        self.set_rows(rows, restyle=True)
