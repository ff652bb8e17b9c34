"""Search the repository index from the session: a query box, the hits, and the highlighted hit's code."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, ClassVar

from rich.syntax import Syntax
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import DataTable, Input, Static

from aetherflow.errors import AetherError
from aetherflow.tui.contracts import SearchBackend
from aetherflow.tui.fmt import clip
from aetherflow.tui.theme import syntax_theme
from aetherflow.tui.widgets.fill_table import FillTable

if TYPE_CHECKING:
    from aetherflow.index.search import SearchHit

RESULTS = 20
NO_INDEX = "There is no index for this repository yet. Build it with `aether index`, then search again."
PROMPT = "Type a query and press Enter, e.g. 'where is the budget enforced'."


class SearchTable(FillTable):
    """One row per hit, keyed by its rank."""

    COLUMNS: ClassVar[list[tuple[str, str, int]]] = [
        ("location", "location", 0),
        ("symbol", "symbol", 18),
        ("score", "score", 6),
    ]


class SearchPanel(Vertical):
    """Runs searches in a thread (the first one loads the embedding model) and shows the results."""

    def __init__(self, backend: SearchBackend | None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.backend = backend
        self.hits: list[SearchHit] = []
        self._lock = threading.Lock()  # the backend's store allows one user at a time

    def compose(self) -> ComposeResult:
        yield Input(placeholder="search the code…", id="search-input")
        yield SearchTable(id="search-table")
        with VerticalScroll(id="search-preview"):
            yield Static(PROMPT if self.backend else NO_INDEX, id="search-code")

    def release(self) -> None:
        """Close the index store (waiting for a search in flight), so that a run can open it: the embedded store
        allows one client at a time. The next search opens it again. Safe to call from any thread."""
        if self.backend is not None:
            with self._lock:
                self.backend.close()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        query = event.value.strip()
        if not query:
            return
        if self.backend is None:
            self._show_message(NO_INDEX)
            return
        self._show_message(f"Searching for {query!r}…")
        self._search(query)

    @work(thread=True, exclusive=True, group="search")
    def _search(self, query: str) -> None:
        assert self.backend is not None
        try:
            with self._lock:
                hits = self.backend.search(query, k=RESULTS) if self.backend.exists() else None
        except AetherError as exc:
            self.app.call_from_thread(self._show_message, str(exc))
            return
        if hits is None:
            self.app.call_from_thread(self._show_message, NO_INDEX)
        else:
            self.app.call_from_thread(self.show_hits, query, hits)

    def show_hits(self, query: str, hits: list[SearchHit]) -> None:
        """Fill the table with `hits` and preview the first one."""
        self.hits = hits
        rows = [(str(rank), (
            Text(f"{hit.path}:{hit.start_line}-{hit.end_line}", no_wrap=True, overflow="ellipsis"),
            Text(clip(hit.qualified_symbol or hit.kind, 18), no_wrap=True),
            Text(f"{hit.score:.3f}", justify="right"),
        )) for rank, hit in enumerate(hits)]  # fmt: skip
        self.query_one(SearchTable).set_rows(rows)
        if hits:
            self._preview(0)
        else:
            self._show_message(f"Nothing matched {query!r}.")

    def _show_message(self, message: str) -> None:
        self.query_one("#search-code", Static).update(Text(message))

    def _preview(self, rank: int) -> None:
        hit = self.hits[rank]
        code = Syntax(hit.text, hit.language if hit.language != "text" else "text", theme=syntax_theme(self.app),
                      line_numbers=True, start_line=hit.start_line, word_wrap=False,
                      background_color=self.background_colors[1].hex)
        self.query_one("#search-code", Static).update(code)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        rank = int(str(event.row_key.value))
        if rank < len(self.hits):
            self._preview(rank)
