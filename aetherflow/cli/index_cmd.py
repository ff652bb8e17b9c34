"""`aether index`: build or update the repository index, with a progress bar and a summary."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from aetherflow.cli import app
from aetherflow.cli._output import console, err_console, print_json

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.console import Console
    from rich.progress import Progress, TaskID

    from aetherflow.events import Event, EventBus
    from aetherflow.index.indexer import IndexSummary

SKIP_EXAMPLES = 3


@app.command("index")
def index_command(
    full: bool = typer.Option(False, "--full", help="Rebuild the whole index instead of updating it."),
    worktree: bool = typer.Option(False, "--worktree", help="Also index uncommitted changes and new files."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    wait: float = typer.Option(10.0, "--wait", min=0, help="Seconds to wait for another indexer to finish."),
) -> None:
    """Index the repository for `aether search` (incremental: only changed files are embedded)."""
    from aetherflow.index.gitrepo import check_work_tree
    from aetherflow.index.service import run_update
    from aetherflow.services import build_services

    root = check_work_tree(Path.cwd())
    services = build_services(cwd=root)
    show_progress = not as_json and err_console().is_terminal
    with _ProgressBar(services.bus, enabled=show_progress):
        summaries = run_update(
            root,
            services.settings.index,
            full=full,
            worktree=worktree,
            wait_s=wait,
            bus=services.bus,
            environ=services.environ,
        )
    if as_json:
        print_json(summaries[0].model_dump(mode="json") | {"reruns": len(summaries) - 1})
        return
    out = console()
    for number, summary in enumerate(summaries):
        if number:
            out.print("[dim]A commit arrived meanwhile; updated again:[/]")
        _print_summary(out, summary)


class _ProgressBar:
    """A rich progress bar fed by IndexProgress events (on stderr, so stdout stays clean)."""

    def __init__(self, bus: EventBus, enabled: bool) -> None:
        self.bus = bus
        self.enabled = enabled
        self._unsubscribe: Callable[[], None] | None = None
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> _ProgressBar:
        if not self.enabled:
            return self
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=err_console(), transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task("Listing files", total=None)
        self._unsubscribe = self.bus.subscribe(self._on_event)
        return self

    def _on_event(self, event: Event) -> None:
        from aetherflow.events import IndexProgress

        if not isinstance(event, IndexProgress) or self._progress is None or self._task is None:
            return
        if event.phase == "index":
            self._progress.update(self._task, description="Indexing files", total=event.total, completed=event.done)

    def __exit__(self, *exc_info: object) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._progress is not None:
            self._progress.stop()


def _print_summary(out: Console, summary: IndexSummary) -> None:
    where = (summary.commit or "no commit")[:12] + (" + work tree" if summary.worktree else "")
    if summary.rebuilt:
        out.print(f"[bold]Rebuilt the index[/] ({summary.rebuild_reason}) at {where}")
    else:
        out.print(f"[bold]Updated the index[/] at {where}")
    out.print(
        f"  {_count(summary.files_total, 'file')}, {_count(summary.chunks_total, 'chunk')} · "
        f"{summary.files_indexed:,} embedded ({_count(summary.chunks_added, 'chunk')}), "
        f"{summary.files_unchanged:,} unchanged, {summary.files_deleted:,} removed · {summary.seconds:.1f} s"
    )
    if not summary.skipped:
        return
    out.print(f"  skipped {_count(len(summary.skipped), 'file')}:")
    for reason, count in summary.skipped_by_reason().items():
        examples = [s for s in summary.skipped if s.reason == reason][:SKIP_EXAMPLES]
        shown = ", ".join(f"{s.path}" for s in examples)
        more = f", … +{count - len(examples)}" if count > len(examples) else ""
        detail = f" ({examples[0].detail})" if examples[0].detail and count == 1 else ""
        out.print(f"    {reason.replace('_', ' ')}: {count} · {shown}{more}{detail}", soft_wrap=True)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
