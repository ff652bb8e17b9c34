"""Plain-terminal rendering of a run: a live rich table of subtasks fed by a RunBoard."""

from __future__ import annotations

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from aetherflow.runboard import BoardSnapshot, RunBoard
from aetherflow.workspace.invisible import reveal_invisible

STATE_STYLE = {
    "pending": "dim",
    "running": "cyan",
    "retrying": "yellow",
    "done": "green",
    "failed": "bold red",
    "skipped": "magenta",
}


def render_board(snap: BoardSnapshot) -> RenderableType:
    """The board as a rich renderable: a header line, the subtask table, and the latest errors."""
    budget = f" of ${snap.budget_usd:.2f}" if snap.budget_usd else ""
    header = Text.assemble(
        (f"{snap.status}", "bold"),
        f"  {snap.elapsed_s:5.1f}s  ",
        (f"${snap.cost_usd:.4f}{budget}", "bold yellow"),
        f"  tokens {snap.tokens_in:,} in / {snap.tokens_out:,} out",
        f"  cache hits {snap.cache_hits}" if snap.cache_hits else "",
    )
    table = Table(expand=True, show_edge=False, pad_edge=False)
    for name, kwargs in [
        ("task", {"no_wrap": True}), ("state", {}), ("agent", {}), ("model", {}),
        ("tokens", {"justify": "right"}), ("cost", {"justify": "right"}), ("detail", {"ratio": 1, "overflow": "ellipsis", "no_wrap": True}),
    ]:
        table.add_column(name, **kwargs)
    for row in snap.tasks:
        table.add_row(
            Text(reveal_invisible(row.task_id)),
            Text(row.state + (f" #{row.attempt}" if row.attempt > 1 else ""), style=STATE_STYLE[row.state]),
            row.agent or "-",
            row.alias or "-",
            f"{row.tokens_in + row.tokens_out:,}",
            f"${row.cost_usd:.4f}",
            Text(reveal_invisible(row.detail or row.reason)),  # model text: never markup, nothing hidden
        )
    parts: list[RenderableType] = [header, table]
    parts += [Text(f"! {reveal_invisible(error)}", style="red") for error in snap.errors[-3:]]
    return Group(*parts)


class LiveRunView:
    """Shows a RunBoard live on the terminal while a run executes (refreshed a few times per second)."""

    def __init__(self, board: RunBoard, console: Console | None = None) -> None:
        self.board = board
        self.console = console or Console(stderr=True)
        self._live = Live(console=self.console, refresh_per_second=6, transient=False, get_renderable=self._render)

    def _render(self) -> RenderableType:
        return render_board(self.board.snapshot())

    def __enter__(self) -> LiveRunView:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(None, None, None)
        if not self.console.is_terminal:
            self.console.line()  # redirected output: the last frame ends without a newline
