"""What a run persists so it can be shown, resumed and reviewed later: `.aetherflow/runs/<id>/state.json`.

The state is rewritten atomically (temp file + rename) after every subtask, so a crash or Ctrl-C leaves the last
complete state and `aether run --resume ID` continues from it without redoing finished subtasks.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from aetherflow import paths
from aetherflow.errors import UsageError
from aetherflow.events import Event, EventBus, RunStatus
from aetherflow.orchestrator.plan import Plan


def new_run_id() -> str:
    """A sortable, unique run id: local time plus a random suffix (e.g. 20261121-064312-a1b2)."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


class RunState(BaseModel):
    """Everything needed to resume or review a run."""

    run_id: str
    request: str
    status: RunStatus = "planning"
    created_at: float = Field(default_factory=time.time)
    budget_usd: float | None = None
    images: list[str] = Field(default_factory=list)
    plan: Plan | None = None
    routes: dict[str, dict[str, Any]] = Field(default_factory=dict)
    outcomes: dict[str, dict[str, Any]] = Field(default_factory=dict)
    summary: str | None = None
    message: str = ""


class RunStore:
    """Reads and writes run folders under `.aetherflow/runs/`."""

    def __init__(self, repo_root: Path) -> None:
        self.repo_root = repo_root
        self.root = paths.state_dir(repo_root) / "runs"

    def folder(self, run_id: str) -> Path:
        """The run's folder (trace, state, change set)."""
        return self.root / run_id

    def save(self, state: RunState) -> None:
        """Write the state atomically."""
        paths.ensure_state_dir(self.repo_root)
        folder = self.folder(state.run_id)
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".state-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(state.model_dump_json(indent=2))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, folder / "state.json")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load(self, run_id: str) -> RunState:
        """The saved state of `run_id`, or a UsageError naming the command that lists runs."""
        path = self.folder(run_id) / "state.json"
        if not path.is_file():
            raise UsageError(f"No run '{run_id}' in {self.root}.", "List runs with `aether runs`.")
        try:
            return RunState.model_validate_json(path.read_text(encoding="utf-8"))
        except ValidationError as exc:
            raise UsageError(
                f"The saved state of run '{run_id}' is unreadable ({exc.error_count()} problem(s)).",
                f"Start a new run; the damaged state is at {path}.",
            ) from exc


class JsonlTrace:
    """Appends every event of one run to `.aetherflow/runs/<id>/trace.jsonl` (one JSON object per line)."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        folder = store.folder(run_id)
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "trace.jsonl"
        self.run_id = run_id
        self._handle = self.path.open("a", encoding="utf-8")
        self._unsubscribe: Callable[[], None] | None = None

    def attach(self, bus: EventBus) -> None:
        """Subscribe to `bus`; events of other runs are ignored."""
        self._unsubscribe = bus.subscribe(self._write)

    def _write(self, event: Event) -> None:
        if event.run_id == self.run_id:
            self._handle.write(event.model_dump_json() + "\n")
            self._handle.flush()

    def close(self) -> None:
        """Stop listening and close the file."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._handle.close()
