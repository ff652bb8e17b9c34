"""The interactive session: type a request (then plan, run and review in place), browse past runs and re-open their
change sets, search the index, and see spend and savings."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Static, TabbedContent, TabPane

from aetherflow.errors import AetherError
from aetherflow.events import EventBus
from aetherflow.tui.contracts import PipelineLike, RunJob, RunResultLike, ScreenExit, SearchBackend
from aetherflow.tui.screens.dialogs import HelpScreen
from aetherflow.tui.screens.review import ReviewScreen
from aetherflow.tui.screens.run import RunScreen
from aetherflow.tui.theme import themed
from aetherflow.tui.widgets.history_panel import HistoryPanel
from aetherflow.tui.widgets.search_panel import SearchPanel
from aetherflow.tui.widgets.stats_panel import StatsPanel

if TYPE_CHECKING:
    from aetherflow.config.models import Price
    from aetherflow.ledger.queries import RunRow
    from aetherflow.ledger.stats import Stats
    from aetherflow.ledger.store import Ledger

HISTORY_ROWS = 100
FOCUS = {"request": "#request-input", "history": "#history-table", "search": "#search-input", "stats": "#stats-panel"}
SESSION_KEYS = [
    ("f2 / f3 / f4 / f5", "Request / History / Search / Stats"),
    ("enter", "Request: start the run · History: re-open that run's change set · Search: search"),
    ("f1", "this help (? works too when no text box has the focus)"),
]
REQUEST_HELP = (
    "Describe the change and press Enter. AetherFlow plans it, runs each subtask on the cheapest capable model, "
    "and shows you the diff: nothing touches your files until you accept it."
)


async def _nothing() -> None:
    return None


@dataclass
class RunKit:
    """What one run of the session uses: a pipeline over its own services (so each run gets its own budget, as
    each `aether run` does), the bus it publishes on, and how to release it afterwards."""

    pipeline: PipelineLike
    bus: EventBus
    close: Callable[[], Awaitable[None]] = _nothing


@dataclass
class SessionSources:
    """What the session reads and drives, built once from Services (see aetherflow.tui.wiring).

    `pipeline` re-opens, applies and discards past runs; `new_run` builds a fresh RunKit for each new request
    (called in a thread: it may import the orchestrator).
    """

    pipeline: PipelineLike
    new_run: Callable[[], RunKit]
    repo_root: Path | None = None
    ledger: Ledger | None = None
    search: SearchBackend | None = None
    baseline: Callable[[], tuple[str | None, Price | None]] = field(default=lambda: (None, None))
    """The model savings are measured against and its price (may import LiteLLM: called off the UI thread)."""
    budget_usd: float | None = None
    clock: Callable[[], float] = field(default=time.time)


class SessionScreen(Screen[None]):
    """Tabs: Request, History, Search, Stats."""

    AUTO_FOCUS = "#request-input"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f2", "tab('request')", "Request"),
        Binding("f3", "tab('history')", "History"),
        Binding("f4", "tab('search')", "Search"),
        Binding("f5", "tab('stats')", "Stats"),
        Binding("f1,question_mark", "help", "Help"),
    ]

    def __init__(self, sources: SessionSources) -> None:
        super().__init__()
        self.sources = sources
        self._baseline: tuple[str | None, Price | None] | None = None

    def compose(self) -> ComposeResult:
        budget = self.sources.budget_usd
        limit = f"Each run may spend up to ${budget:.2f}." if budget else "No spending limit is set (`--budget`)."
        with TabbedContent(initial="request"):
            with TabPane("Request", id="request"), Vertical(id="request-pane"):
                yield Input(placeholder="What should change? e.g. add input validation to the signup form",
                            id="request-input")
                yield Static(Text(f"{REQUEST_HELP}\n{limit}", style="dim"), id="request-status")
            with TabPane("History", id="history"):
                yield HistoryPanel(id="history-panel")
            with TabPane("Search", id="search"):
                yield SearchPanel(self.sources.search, id="search-panel")
            with TabPane("Stats", id="stats"):
                yield StatsPanel(id="stats-panel")
        yield Footer()

    def on_mount(self) -> None:
        # The tab panes mount after this screen does: touch their widgets only once they are there.
        self.call_after_refresh(self.reload)
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.reload())

    # ----- tabs ---------------------------------------------------------------------------------------------

    def action_tab(self, name: str) -> None:
        """Show tab `name` and focus its main widget (TabbedContent follows the focus, so it must move too)."""
        self.query_one(TabbedContent).active = name
        self.query_one(FOCUS[name]).focus()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id in ("history", "stats"):
            self.reload()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen("Session", SESSION_KEYS, REQUEST_HELP))

    # ----- ledger views -------------------------------------------------------------------------------------

    def reload(self) -> None:
        """Re-read history and stats from the ledger, off the UI thread."""
        if self.sources.ledger is not None:
            self._load_ledger()

    @work(thread=True, exclusive=True, group="ledger")
    def _load_ledger(self) -> None:
        from aetherflow.ledger.queries import list_runs
        from aetherflow.ledger.stats import compute_stats

        ledger = self.sources.ledger
        assert ledger is not None
        runs = list_runs(ledger, HISTORY_ROWS)
        if self._baseline is None:
            self._baseline = self.sources.baseline()
        stats = compute_stats(ledger, self._baseline[1])
        self.app.call_from_thread(self._show_ledger, runs, stats, self._baseline[0])

    def _show_ledger(self, runs: list[RunRow], stats: Stats, baseline_name: str | None) -> None:
        self.query_one(HistoryPanel).show(runs)
        self.query_one(StatsPanel).show(stats, baseline_name)

    # ----- running ------------------------------------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "request-input":
            return
        event.stop()
        request = event.value.strip()
        if not request:
            self._status("Type what should change first, then press Enter.", "$text-warning")
            return
        self.start_run(RunJob(request=request))

    def start_run(self, job: RunJob) -> None:
        """Open the run screen for `job` (the review follows in place) with a fresh RunKit, built off the UI thread."""
        self._prepare_run(job, self.query_one(SearchPanel))

    @work(thread=True, exclusive=True, group="start")
    def _prepare_run(self, job: RunJob, search: SearchPanel) -> None:
        search.release()  # the run's retrieval needs the index store, which takes one client at a time
        kit = self.sources.new_run()
        self.app.call_from_thread(self._open_run, job, kit)

    def _open_run(self, job: RunJob, kit: RunKit) -> None:
        screen = RunScreen(job, kit.pipeline, kit.bus, clock=self.sources.clock, repo_root=self.sources.repo_root)

        def done(outcome: ScreenExit | None) -> None:
            self.run_worker(kit.close(), group="close")
            self._after(outcome)

        self.app.push_screen(screen, callback=done)

    def _after(self, outcome: ScreenExit | None) -> None:
        if outcome is None:
            return
        ok = outcome.outcome in ("applied", "no_changes", "kept", "discarded")
        self._status(outcome.text(), "$text-success" if ok else "$text-error")
        self.notify(outcome.text(), severity="information" if ok else "error", timeout=8)
        if outcome.outcome in ("applied", "discarded"):
            self.query_one("#request-input", Input).value = ""
        self.reload()

    def _status(self, message: str, style: str) -> None:
        self.query_one("#request-status", Static).update(Text(message, style=themed(self.app, style)))

    # ----- re-opening a past run ----------------------------------------------------------------------------

    def on_history_panel_reopen(self, event: HistoryPanel.Reopen) -> None:
        self.notify(f"Opening run {event.run_id}…", timeout=2)
        self._reopen(event.run_id)

    @work(thread=True, exclusive=True, group="reopen")
    def _reopen(self, run_id: str) -> None:
        try:
            result = self.sources.pipeline.load_result(run_id)
        except AetherError as exc:
            self.app.call_from_thread(self.notify, str(exc), title="Cannot re-open", severity="error", timeout=15)
            return
        self.app.call_from_thread(self._review, result)

    def _review(self, result: RunResultLike) -> None:
        if result.status != "review" or result.changeset is None or not result.changeset.files:
            self.notify(f"Run {result.run_id} has nothing left to review (it is {result.status}).\n"
                        f"→ See what it did with `aether runs show {result.run_id}`.",
                        title="Nothing to review", severity="warning", timeout=10)
            return
        screen = ReviewScreen(result, self.sources.pipeline, None, self.sources.repo_root)
        self.app.push_screen(screen, callback=self._after)
