"""The run screen: the plan with each subtask's state, the selected subtask's live output, cost and errors.

The pipeline runs in a Textual worker (an asyncio task on the app's loop). The bus subscriber only folds events
into a RunBoard, which is cheap and thread-safe; a timer redraws from `board.snapshot()` ten times a second, so a
flood of text deltas and cost ticks costs one redraw per tick, never one per event, and no message queue grows.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerCancelled

from aetherflow.errors import AetherError, RunInterrupted
from aetherflow.events import EventBus
from aetherflow.runboard import BoardSnapshot, RunBoard, TaskRow
from aetherflow.tui.contracts import PipelineLike, RunJob, RunResultLike, ScreenExit
from aetherflow.tui.fmt import clip
from aetherflow.tui.screens.dialogs import HelpScreen, confirm
from aetherflow.tui.screens.review import ReviewScreen
from aetherflow.tui.theme import themed
from aetherflow.tui.widgets.cost_meter import CostMeter
from aetherflow.tui.widgets.error_list import ErrorList
from aetherflow.tui.widgets.plan_table import PlanTable
from aetherflow.tui.widgets.task_output import TaskOutput

REFRESH_S = 0.1
CANCELLED_EXIT = 130  # what a shell reports for Ctrl-C, as the plain CLI does
RUN_KEYS = [
    ("up / down", "select a subtask to see its output"),
    ("f", "follow the running subtask again"),
    ("q / ctrl+c", "during a run: ask, then cancel it (nothing is applied; it can be resumed)"),
    ("q", "after the run: close this screen"),
]


def resume_hint(run_id: str | None) -> str | None:
    """How to continue an interrupted run, when its id is known."""
    return f"Resume it with `aether run --resume {run_id}`." if run_id else None


class RunScreen(Screen[ScreenExit]):
    """Runs one job through the pipeline and shows it; hands the change set to the review screen."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit_run", "Cancel / close"),
        Binding("ctrl+c", "quit_run", "Cancel", show=False, priority=True),
        Binding("f", "follow", "Follow"),
        Binding("question_mark", "help", "Help"),
    ]

    def __init__(
        self,
        job: RunJob,
        pipeline: PipelineLike,
        bus: EventBus,
        *,
        clock: Callable[[], float] = time.time,
        refresh_s: float = REFRESH_S,
        repo_root: Path | None = None,
    ) -> None:
        super().__init__()
        self.repo_root = repo_root
        self.job = job
        self.pipeline = pipeline
        self.bus = bus
        self.board = RunBoard(run_id=job.resume_id)
        self.clock = clock
        self.refresh_s = refresh_s
        self.result: RunResultLike | None = None
        self.final: ScreenExit | None = None
        self.worker: Worker[None] | None = None
        self.redraws = 0
        self._cancel_requested = False
        self._started = clock()
        self._ended: float | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._snap: BoardSnapshot | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text("› " + clip(self.job.request, 200), no_wrap=True, overflow="ellipsis"), id="run-request")
        yield CostMeter(id="meter")
        yield PlanTable(id="plan")
        yield TaskOutput(id="output")
        yield ErrorList(id="errors")
        yield Footer()

    def on_mount(self) -> None:
        self._unsubscribe = self.bus.subscribe(self.board.apply)
        self.set_interval(self.refresh_s, self.refresh_view)
        self.worker = self.run_worker(self._execute(), name="pipeline", group="run")
        self.refresh_view()

    def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()

    # ----- the run ----------------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the pipeline worker has not finished."""
        return self.worker is not None and not self.worker.is_finished and self.final is None and self.result is None

    async def _execute(self) -> None:
        job = self.job
        try:
            result = await self.pipeline.run(job.request, images=list(job.images) or None, resume_id=job.resume_id)
        except asyncio.CancelledError:
            self._finish(self._cancelled_exit())
            raise
        except RunInterrupted as exc:
            self._finish(self._cancelled_exit() if self._cancel_requested else ScreenExit(
                outcome="interrupted", exit_code=exc.exit_code, run_id=self.board.run_id, message=exc.message,
                hint=exc.hint or resume_hint(self.board.run_id),
            ))  # fmt: skip
            return
        except AetherError as exc:
            self._finish(ScreenExit(
                outcome="failed", exit_code=exc.exit_code, run_id=self.board.run_id, message=exc.message, hint=exc.hint
            ))  # fmt: skip
            return
        self._on_result(result)

    def _cancelled_exit(self) -> ScreenExit:
        run_id = self.board.run_id
        label = f"Run {run_id}" if run_id else "The run"
        return ScreenExit(
            outcome="cancelled", exit_code=CANCELLED_EXIT, run_id=run_id,
            message=f"{label} was cancelled: nothing was applied.", hint=resume_hint(run_id),
        )  # fmt: skip

    def _on_result(self, result: RunResultLike) -> None:
        self.result = result
        self._ended = self.clock()
        changeset = result.changeset
        if changeset is not None and changeset.files:
            validations = self.board.snapshot().validations
            review = ReviewScreen(result, self.pipeline, validations, self.repo_root, commit=self.job.commit)
            self.app.push_screen(review, callback=self._after_review)
            return
        failed = result.status in ("failed", "cancelled")
        self._finish(ScreenExit(
            outcome="failed" if failed else "no_changes", exit_code=1 if failed else 0, run_id=result.run_id,
            message=result.message or ("The run failed." if failed else "The run finished without changing any file."),
            hint="Details: `aether runs show " + result.run_id + "`." if failed else None,
        ))  # fmt: skip

    def _after_review(self, outcome: ScreenExit | None) -> None:
        self.final = outcome or ScreenExit(outcome="kept", run_id=self.result.run_id if self.result else None)
        self.dismiss(self.final)

    def _finish(self, outcome: ScreenExit) -> None:
        """The run ended without a review: show why and wait for `q`."""
        self.final = outcome
        self._ended = self._ended or self.clock()

    # ----- drawing ----------------------------------------------------------------------------------------------

    def status(self, snap: BoardSnapshot) -> str:
        """The status to show: the screen's own verdict once it has one, else the board's."""
        if self.final is not None:
            return {"cancelled": "cancelled", "failed": "failed", "interrupted": "interrupted"}.get(
                self.final.outcome, "finished"
            )
        if self._cancel_requested:
            return "cancelling"
        # Each subtask's syntax check reports "validating" while other subtasks still run: say "running" then.
        busy = any(row.state in ("running", "retrying") for row in snap.tasks)
        return "running" if snap.status == "validating" and busy else snap.status

    def _rows(self, snap: BoardSnapshot) -> list[TaskRow]:
        """The board's rows; once the run stopped early, subtasks that were still going are shown as stopped."""
        if self.final is None or self.final.outcome not in ("cancelled", "failed", "interrupted"):
            return snap.tasks
        why = "stopped: the run was cancelled" if self.final.outcome == "cancelled" else "stopped with the run"
        return [row.model_copy(update={"state": "skipped", "detail": why})
                if row.state in ("running", "retrying", "pending") else row for row in snap.tasks]

    def on_plan_table_highlighted(self, event: PlanTable.Highlighted) -> None:
        """Show the newly selected subtask at once rather than at the next tick."""
        rows = {row.task_id: row for row in self._snap.tasks} if self._snap else {}
        self.query_one(TaskOutput).show(rows.get(event.task_id))

    def refresh_view(self) -> None:
        """Redraw every panel from one board snapshot (called by the timer; cheap when nothing changed)."""
        snap = self._snap = self.board.snapshot()
        self.redraws += 1
        start = snap.started_at or self._started
        elapsed = max(0.0, (self._ended or self.clock()) - start)
        self.query_one(CostMeter).show(snap, elapsed, self.status(snap))
        plan = self.query_one(PlanTable)
        tasks = self._rows(snap)
        plan.show(tasks)
        rows = {row.task_id: row for row in tasks}
        if not plan.manual:
            active = next((r.task_id for r in tasks if r.state in ("running", "retrying")), None)
            if active is not None and plan.selected_task() != active:
                plan.follow(active)
        selected = plan.selected_task()
        self.query_one(TaskOutput).show(rows.get(selected) if selected else None)
        self.query_one(ErrorList).show(snap.errors, self._final_text())

    def _final_text(self) -> Text | None:
        if self.final is None:
            return None
        ok = self.final.outcome in ("no_changes", "applied", "kept", "discarded")
        style = themed(self.app, "bold $text-success" if ok else "bold $text-error")
        text = Text(self.final.message, style=style)
        if self.final.hint:
            text.append(f"\n→ {self.final.hint}", style=themed(self.app, "$text-warning"))
        text.append("\nPress q to close.", style="dim")
        return text

    # ----- keys -------------------------------------------------------------------------------------------------

    def action_quit_run(self) -> None:
        """During a run: ask, then cancel. Afterwards: close with the run's outcome."""
        if not self.running:
            self.dismiss(self.final or ScreenExit(outcome="kept", run_id=self.board.run_id))
            return
        run_id = self.board.run_id
        body = ["Nothing will be applied; work done so far stays recorded."]
        if run_id:
            body.append(f"You can resume it later with `aether run --resume {run_id}`.")
        self.app.push_screen(confirm("Cancel this run?", body, yes="Cancel run", no="Keep running"), self._on_confirm)

    async def cancel_and_wait(self) -> None:
        """Cancel the run's worker and wait until the pipeline has stopped (used when the app quits)."""
        if self.worker is None or self.worker.is_finished:
            return
        self._cancel_requested = True
        self.worker.cancel()
        with contextlib.suppress(WorkerCancelled):  # the outcome is recorded in self.final by _execute
            await self.worker.wait()

    def _on_confirm(self, answer: str | None) -> None:
        if answer == "yes" and self.running and self.worker is not None:
            self._cancel_requested = True
            self.worker.cancel()

    def action_follow(self) -> None:
        """Follow the running subtask again after the user moved the cursor."""
        self.query_one(PlanTable).manual = False
        self.refresh_view()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen("Run", RUN_KEYS, "The output panel shows the selected subtask's stream."))
