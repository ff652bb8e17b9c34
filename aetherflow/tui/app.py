"""The Textual apps: `RunApp` (one run and its review, for `aether run` in a terminal) and `SessionApp`
(`aether tui`). Both share the stylesheet, the theme switch, and a quit that cancels a running run cleanly."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import Screen

from aetherflow.events import EventBus
from aetherflow.tui.contracts import PipelineLike, RunJob, ScreenExit
from aetherflow.tui.screens.run import RunScreen
from aetherflow.tui.screens.session import SessionScreen, SessionSources
from aetherflow.tui.theme import DARK_THEME, LIGHT_THEME


class AetherApp(App[int]):
    """What both apps share."""

    CSS_PATH = str(Path(__file__).with_name("app.tcss"))  # absolute, so that subclasses elsewhere find it
    TITLE = "AetherFlow"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+t", "toggle_theme", "Theme", show=False),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(self, theme: str | None = None) -> None:
        super().__init__()
        if theme is not None:
            self.theme = theme

    def action_toggle_theme(self) -> None:
        """Switch between the light and the dark theme."""
        self.theme = LIGHT_THEME if self.current_theme.dark else DARK_THEME

    async def action_quit(self) -> None:
        """Quit at once; a running run is cancelled first and waited for, so it stops cleanly and stays resumable."""
        for screen in list(self.screen_stack):
            if isinstance(screen, RunScreen) and screen.running:
                await screen.cancel_and_wait()
        self.exit(self.quit_code())

    def quit_code(self) -> int:
        """The exit code when the user quits with ctrl+q."""
        return 0


class RunApp(AetherApp):
    """One run, then its review; exits with the run's exit code. `outcome` says how it ended."""

    def __init__(
        self,
        job: RunJob,
        pipeline: PipelineLike,
        bus: EventBus,
        *,
        repo_root: Path | None = None,
        clock: Callable[[], float] = time.time,
        theme: str | None = None,
    ) -> None:
        super().__init__(theme)
        self.run_screen = RunScreen(job, pipeline, bus, clock=clock, repo_root=repo_root)
        self.outcome: ScreenExit | None = None

    def on_mount(self) -> None:
        self.push_screen(self.run_screen, callback=self._done)

    def _done(self, outcome: ScreenExit | None) -> None:
        self.outcome = outcome or self.run_screen.final
        self.exit(self.outcome.exit_code if self.outcome else 0)

    def quit_code(self) -> int:
        self.outcome = self.outcome or self.run_screen.final
        return self.outcome.exit_code if self.outcome else 0


class SessionApp(AetherApp):
    """The interactive session of `aether tui`."""

    def __init__(self, sources: SessionSources, *, theme: str | None = None) -> None:
        super().__init__(theme)
        self.sources = sources

    def get_default_screen(self) -> Screen[None]:
        return SessionScreen(self.sources)
