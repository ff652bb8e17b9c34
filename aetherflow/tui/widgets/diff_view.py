"""The selected file's diff, one block per hunk, syntax-highlighted, each showing whether it will be applied."""

from __future__ import annotations

from rich.console import Group
from rich.syntax import Syntax
from rich.text import Text
from textual import events
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Static

from aetherflow.tui.review_state import ReviewState
from aetherflow.tui.theme import syntax_theme, themed
from aetherflow.workspace.changeset import FileChange, Hunk
from aetherflow.workspace.invisible import reveal_invisible


class HunkView(Static):
    """One hunk: a header with its decision, then its lines. Clicking it makes it the current hunk."""

    class Clicked(Message):
        """The user clicked hunk `index`."""

        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    def __init__(self, hunk: Hunk) -> None:
        super().__init__("", classes="hunk")
        self.hunk = hunk

    def draw(self, accepted: bool, current: bool, total: int) -> None:
        """Render with the decision and the current-hunk marker."""
        self.set_class(current, "-current")
        self.set_class(not accepted, "-rejected")
        head = Text(no_wrap=True, overflow="ellipsis")
        head.append("▶ " if current else "  ", style=themed(self.app, "bold $text-accent"))
        head.append(f"hunk {self.hunk.index + 1}/{total} ", style="bold")
        mark, style = ("✓ apply", "bold $text-success") if accepted else ("✗ skip", "bold $text-error")
        head.append(mark, style=themed(self.app, style))
        head.append(f"  {self.hunk.header}", style="dim")
        # The widget's own background, not the terminal's default, so the code sits on the panel seamlessly.
        background = self.background_colors[1].hex
        # Bidi, zero-width and control characters as code-point markers (`<U+202E>`): a reordered or hidden line
        # is reviewed as it is.
        body = Syntax(
            reveal_invisible("\n".join(self.hunk.lines)), "diff", theme=syntax_theme(self.app),
            background_color=background, word_wrap=False,
        )
        self.update(Group(head, body))

    def on_click(self, event: events.Click) -> None:
        event.stop()
        self.post_message(self.Clicked(self.hunk.index))


class DiffView(VerticalScroll, can_focus=False):
    """Holds the HunkViews of one file; the review screen says which file, which hunk is current, and redraws."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.path: str | None = None

    async def show_file(self, change: FileChange) -> None:
        """Replace the content with `change`'s hunks (or a note for a file without hunks)."""
        self.path = change.path
        await self.remove_children()
        if change.hunks:
            await self.mount_all([HunkView(hunk) for hunk in change.hunks])
        else:
            what = "Binary file" if change.binary else "No line changes"
            await self.mount(Static(Text(f"{what} ({change.status}): accepted or rejected as a whole."),
                                    classes="hunk whole"))
        self.scroll_home(animate=False)

    def draw(self, state: ReviewState, current: int | None) -> None:
        """Redraw each hunk's decision and the current marker; scroll the current hunk into view."""
        if self.path is None:
            return
        views = list(self.query(HunkView))
        for view in views:
            is_current = view.hunk.index == current
            view.draw(state.hunk_accepted(self.path, view.hunk.index), is_current, len(views))
            if is_current:
                self.scroll_to_widget(view, animate=False, top=True)
        whole = list(self.query(".whole").results(Static))
        for note in whole:
            note.set_class(state.file_decision(self.path) == "rejected", "-rejected")
