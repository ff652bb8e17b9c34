"""The run's latest errors, each naming the subtask or step where it happened; hidden while there are none."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from aetherflow.tui.theme import themed

SHOWN = 3


class ErrorList(Static):
    """The last few errors of a run, newest last, with a count of older ones."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__("", **kwargs)  # type: ignore[arg-type]
        self._last: list[str] = []
        self._extra: Text | None = None

    def show(self, errors: list[str], extra: Text | None = None) -> None:
        """Display `errors` (the board's), then `extra` (the screen's own final error, with its hint)."""
        if errors == self._last and extra == self._extra:
            return
        self._last, self._extra = list(errors), extra
        text = Text(no_wrap=False)
        style = themed(self.app, "$text-error")
        if len(errors) > SHOWN:
            text.append(f"… {len(errors) - SHOWN} earlier error(s)\n", style="dim")
        for error in errors[-SHOWN:]:
            text.append(f"! {error}\n", style=style)
        if extra is not None:
            text.append_text(extra)
        text.rstrip()
        self.update(text)
        self.display = bool(errors) or extra is not None
