"""Modal dialogs: a choice between a few labelled answers (each with a key), and the help screen."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class Choice(BaseModel):
    """One answer of a dialog: the key that picks it, its button label, and the value returned."""

    key: str
    label: str
    value: str
    variant: str = "default"


class ChoiceDialog(ModalScreen[str | None]):
    """Asks one question; returns the chosen value, or None on Escape (which always means 'go back')."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss_none", "Back", show=False)]

    def __init__(self, title: str, body: list[str] | str, choices: list[Choice]) -> None:
        super().__init__()
        self.title_text = title
        self.body = body if isinstance(body, list) else [body]
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Text(self.title_text, style="bold"), id="dialog-title")
            with VerticalScroll(id="dialog-body"):
                yield Static(Text("\n".join(self.body)))
            with Horizontal(id="dialog-buttons"):
                for choice in self.choices:
                    yield Button(f"{choice.label} ({choice.key})", id=f"choice-{choice.value}",
                                 variant=choice.variant, compact=True)  # type: ignore[arg-type]

    def on_key(self, event: events.Key) -> None:
        for choice in self.choices:
            if event.key == choice.key:
                event.stop()
                self.dismiss(choice.value)
                return

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss((event.button.id or "").removeprefix("choice-"))

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


def confirm(title: str, body: list[str] | str, yes: str = "Yes", no: str = "No") -> ChoiceDialog:
    """A yes/no dialog: `y` answers "yes", `n` (or Escape) answers no."""
    return ChoiceDialog(title, body, [
        Choice(key="y", label=yes, value="yes", variant="primary"),
        Choice(key="n", label=no, value="no"),
    ])  # fmt: skip


GLOBAL_HELP = [
    ("?", "this help"),
    ("ctrl+t", "switch between the light and the dark theme"),
    ("tab / shift+tab", "move between panels"),
    ("ctrl+q", "quit at once (a running run is cancelled, nothing is applied)"),
]


class HelpScreen(ModalScreen[None]):
    """The keys of the screen it was opened from, then the keys that work everywhere."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, title: str, keys: list[tuple[str, str]], notes: str = "") -> None:
        super().__init__()
        self.help_title = title
        self.keys = keys
        self.notes = notes

    def compose(self) -> ComposeResult:
        text = Text()
        text.append(f"{self.help_title}\n\n", style="bold")
        width = max(len(k) for k, _ in [*self.keys, *GLOBAL_HELP])
        for key, what in self.keys:
            text.append(f"  {key.ljust(width)}  ", style="bold")
            text.append(f"{what}\n")
        text.append("\nEverywhere\n", style="bold")
        for key, what in GLOBAL_HELP:
            text.append(f"  {key.ljust(width)}  ", style="bold")
            text.append(f"{what}\n")
        if self.notes:
            text.append(f"\n{self.notes}\n", style="dim")
        text.append("\nPress Escape to close.", style="dim")
        with VerticalScroll(id="help"):
            yield Static(text)

    def action_close(self) -> None:
        self.dismiss(None)
