"""Fakes and builders for the TUI tests: a scripted pipeline over a real git worktree, and fixed event scripts.

`ScriptedPipeline` has the Pipeline's shape. Its `run` publishes a scripted sequence of events on the bus,
stopping at each `Pause` until the test calls `resume()`, then writes the scripted edits in a real Workspace and
returns the change set. `apply` and `discard` go through the real workspace apply, so what lands on disk is what
the product would write.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel

from aetherflow.errors import UnsafePathError
from aetherflow.events import (
    CallFinished,
    CallRetry,
    CallStarted,
    CallTextDelta,
    Event,
    EventBus,
    PlanReady,
    RunFinished,
    RunStarted,
    TaskStateChanged,
    ToolExecuted,
    ValidationFinished,
)
from aetherflow.index.search import SearchHit
from aetherflow.ledger.store import Ledger
from aetherflow.llm.types import Usage
from aetherflow.workspace.apply import AppliedRecord, Selection, apply_changes
from aetherflow.workspace.changeset import ChangeSet, build_file_change
from aetherflow.workspace.worktree import Workspace

T0 = 1_790_000_000.0  # a fixed start time, so elapsed times and dates in snapshots never change

UTIL = "".join(f"line {i}\n" for i in range(1, 41))


class Pause(BaseModel):
    """A point where the scripted run waits for the test."""

    label: str


class FakeResult(BaseModel):
    """The fields of RunResult the TUI reads."""

    run_id: str
    status: str
    changeset: ChangeSet | None = None
    summary: str | None = None
    cost_usd: float = 0.0
    message: str = ""


def git(repo: Path, *args: str) -> str:
    """Run git in `repo`; fail the test on a non-zero exit."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False, env=env)
    assert proc.returncode == 0, f"git {args} failed: {proc.stderr}"
    return proc.stdout


def make_repo(root: Path, files: dict[str, str]) -> Path:
    """A git repository at `root` with `files` committed."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q")
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root


def tree_state(repo: Path) -> dict[str, str]:
    """Hashes of every file of the user's tree (outside .git and .aetherflow), plus `git status`."""
    state = {}
    for path in sorted(repo.rglob("*")):
        rel = path.relative_to(repo).as_posix()
        if rel.split("/")[0] in (".git", ".aetherflow") or not path.is_file():
            continue
        state[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    state["<status>"] = git(repo, "status", "--porcelain", "--untracked-files=all")
    return state


def finished(run_id: str, task: str | None, alias: str, agent: str, cost: float, tokens_in: int, tokens_out: int,
             ts: float) -> CallFinished:
    """A CallFinished for `task` (None: the planner's call)."""
    return CallFinished(
        run_id=run_id, task_id=task, call_id=f"{task}-{ts}", alias=alias, model_id=f"openai/{alias}", agent=agent,
        usage=Usage(prompt_tokens=tokens_in, completion_tokens=tokens_out), cost_usd=cost, latency_s=0.5, ts=ts,
    )


PLAN = {
    "summary": "Rename the helper and use it",
    "tasks": [
        {"id": "rename", "type": "code_edit", "description": "Rename check() to is_valid()", "depends_on": []},
        {"id": "callers", "type": "code_edit", "description": "Update the callers", "depends_on": ["rename"]},
        {"id": "docs", "type": "docs", "description": "Mention it in the README", "depends_on": ["rename"]},
    ],
}
ROUTES = {
    "rename": {"agent": "coder", "alias": "fast", "reason": "simple edit: cheapest model with tools"},
    "callers": {"agent": "coder", "alias": "fast", "reason": "simple edit: cheapest model with tools"},
    "docs": {"agent": "editor", "alias": "fast", "reason": "prose: cheapest model"},
}


def run_script(run_id: str, request: str, budget: float | None = 0.5) -> list[Event | Pause]:
    """A three-subtask run: planning, one subtask done, one retrying, one running with output, then the end."""
    t = T0
    ev: list[Event | Pause] = [
        RunStarted(run_id=run_id, request=request, budget_usd=budget, ts=t),
        finished(run_id, None, "strong", "orchestrator", 0.0123, 1800, 400, t + 1),
        PlanReady(run_id=run_id, plan=PLAN, routes=ROUTES, ts=t + 2),
        Pause(label="planned"),
        TaskStateChanged(run_id=run_id, task_id="rename", state="running", agent="coder", alias="fast", ts=t + 3),
        CallStarted(run_id=run_id, task_id="rename", call_id="c1", alias="fast", model_id="openai/fast", ts=t + 3),
        CallTextDelta(run_id=run_id, task_id="rename", call_id="c1", text="Renaming check to is_valid.", ts=t + 4),
        ToolExecuted(run_id=run_id, task_id="rename", name="edit_file", arguments="{}", ok=True,
                     summary="app/auth.py: +2 -2", ts=t + 4),
        finished(run_id, "rename", "fast", "coder", 0.0011, 900, 120, t + 5),
        TaskStateChanged(run_id=run_id, task_id="rename", state="done", agent="coder", alias="fast", ts=t + 5),
        Pause(label="first done"),
        TaskStateChanged(run_id=run_id, task_id="callers", state="running", agent="coder", alias="fast", ts=t + 6),
        TaskStateChanged(run_id=run_id, task_id="docs", state="running", agent="editor", alias="fast", ts=t + 6),
        CallRetry(run_id=run_id, task_id="docs", call_id="c3", alias="fast", attempt=2, error="HTTP 429", wait_s=1.0,
                  ts=t + 7),
        CallTextDelta(run_id=run_id, task_id="callers", call_id="c2", text="Updating login() to call is_valid().",
                      ts=t + 7),
        finished(run_id, "callers", "fast", "coder", 0.0009, 700, 90, t + 8),
        Pause(label="mid run"),
        TaskStateChanged(run_id=run_id, task_id="callers", state="done", agent="coder", alias="fast", ts=t + 9),
        finished(run_id, "docs", "fast", "editor", 0.0004, 300, 40, t + 9),
        TaskStateChanged(run_id=run_id, task_id="docs", state="done", agent="editor", alias="fast", ts=t + 10),
        ValidationFinished(run_id=run_id, task_id="rename", step="syntax:app/auth.py", ok=True, ts=t + 10),
    ]
    return ev


@dataclass
class ScriptedPipeline:
    """A pipeline double: scripted events, real worktree edits, real apply."""

    bus: EventBus
    repo_root: Path | None
    edits: dict[str, str | None]
    script: list[Event | Pause]
    run_id: str = "run-tui-1"
    status: str = "review"
    reached: dict[str, asyncio.Event] = field(default_factory=lambda: defaultdict(asyncio.Event))
    _go: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: bool = False
    results: dict[str, FakeResult] = field(default_factory=dict)
    applied: list[Selection] = field(default_factory=list)
    commits: list[bool] = field(default_factory=list)
    discarded: list[str] = field(default_factory=list)
    calls: list[dict[str, object]] = field(default_factory=list)
    error: Exception | None = None  # raised once the script has been published

    async def run(self, request: str, *, images: list[Path] | None = None, resume_id: str | None = None) -> FakeResult:
        self.calls.append({"request": request, "images": images, "resume_id": resume_id})
        workspace = Workspace.create(self.repo_root, self.run_id) if self.repo_root else None
        try:
            for item in self.script:
                if isinstance(item, Pause):
                    await self._pause(item.label)
                else:
                    self.bus.publish(item)
        except asyncio.CancelledError:
            self.cancelled = True
            self.bus.publish(RunFinished(run_id=self.run_id, status="cancelled", message="cancelled"))
            raise
        if self.error is not None:
            raise self.error
        changeset = await self._edit(workspace)
        cost = sum(e.cost_usd for e in self.script if isinstance(e, CallFinished))
        finished_event = RunFinished(run_id=self.run_id, status=self.status, cost_usd=cost, message="ready", ts=T0 + 11)
        self.bus.publish(finished_event)
        result = FakeResult(run_id=self.run_id, status=self.status, changeset=changeset, cost_usd=cost,
                            message="No file changed." if not changeset.files else "Ready for review.")
        self.results[self.run_id] = result
        return result

    async def _pause(self, label: str) -> None:
        self._go.clear()
        self.reached[label].set()
        await self._go.wait()

    async def wait_paused(self, label: str) -> None:
        """Wait until the run stops at `label`."""
        await self.reached[label].wait()

    def resume(self) -> None:
        """Let the run continue past its current pause."""
        self._go.set()

    async def _edit(self, workspace: Workspace | None) -> ChangeSet:
        if workspace is None:
            return ChangeSet(run_id=self.run_id)
        for path, text in self.edits.items():
            try:
                if text is None:
                    await workspace.delete_file(path)
                else:
                    await workspace.write_file(path, text)
            except UnsafePathError:
                continue  # refused, as an agent's write would be; the change set names it as held back
        return workspace.changeset()

    def apply(self, result: FakeResult, selection: Selection, *, commit: bool = False) -> AppliedRecord:
        assert self.repo_root is not None and result.changeset is not None
        self.applied.append(selection)
        self.commits.append(commit)
        workspace = Workspace.open(self.repo_root, result.run_id)
        return apply_changes(self.repo_root, result.changeset, selection, workspace.user_snapshot)

    def discard(self, result: FakeResult) -> None:
        self.discarded.append(result.run_id)
        if self.repo_root is not None:
            Workspace.open(self.repo_root, result.run_id).remove()

    def load_result(self, run_id: str) -> FakeResult:
        return self.results[run_id]


def sample_changeset(run_id: str = "run-review") -> ChangeSet:
    """A change set without a repository: one modified Python file with three hunks, one new file, one deletion."""
    old = "".join(f"line {i}\n" for i in range(1, 41))
    lines = old.splitlines(keepends=True)
    lines[2] = "line 3 changed\n"
    lines[19] = "line 20 changed\n"
    lines[36] = "line 37 changed\n"
    return ChangeSet(run_id=run_id, files=[
        build_file_change("app/util.py", old, "".join(lines)),
        build_file_change("app/jwt.py", None, "def encode(claims):\n    return sign(claims)\n"),
        build_file_change("old/legacy.py", "print('old')\n", None),
    ])  # fmt: skip


class FakeSearch:
    """A SearchBackend with fixed hits."""

    def __init__(self, hits: list[SearchHit], exists: bool = True) -> None:
        self.hits = hits
        self._exists = exists
        self.queries: list[str] = []
        self.closed = False

    def exists(self) -> bool:
        return self._exists

    def search(self, query: str, k: int = 10) -> list[SearchHit]:
        self.queries.append(query)
        return self.hits[:k]

    def close(self) -> None:
        self.closed = True


def sample_hits() -> list[SearchHit]:
    """Two hits in Python files."""
    return [
        SearchHit(path="app/auth.py", start_line=1, end_line=2, symbol="login", parent=None, kind="function",
                  language="python", signature="def login(user)", score=0.91,
                  text="def login(user):\n    return check(user)\n"),
        SearchHit(path="app/auth.py", start_line=5, end_line=6, symbol="check", parent=None, kind="function",
                  language="python", signature="def check(user)", score=0.74,
                  text="def check(user):\n    return bool(user)\n"),
    ]


def fill_ledger(ledger: Ledger) -> None:
    """Three past runs over three days with calls on two models, a cache hit and review outcomes (fixed times)."""
    day = 86_400.0
    runs = [
        ("run-a", "Add input validation to signup", "applied", T0 - 2 * day, "Applied 2 file(s)."),
        ("run-b", "Rename check() to is_valid()", "review", T0 - day, "2 file(s) changed, ready for review."),
        ("run-c", "Speed up the search endpoint", "failed", T0, "1 subtask(s) failed (perf: timeout)."),
    ]
    for run_id, request, status, started, message in runs:
        ledger.start_run(run_id, request, 0.5)
        ledger.update_run(run_id, status=status, started_at=started, ended_at=started + 60, message=message)
        ledger.record_finished(finished(run_id, None, "strong", "orchestrator", 0.0123, 1800, 400, started + 1))
        ledger.record_finished(finished(run_id, "t1", "fast", "coder", 0.0011, 900, 120, started + 5))
    ledger.record_finished(finished("run-c", "t2", "strong", "reasoner", 0.0250, 2400, 900, T0 + 9))
    hit = finished("run-b", "t2", "fast", "coder", 0.0, 900, 120, T0 - day + 7)
    ledger.record_finished(hit.model_copy(update={"cache_hit": True, "call_id": "hit"}))
    ledger.record_outcomes("run-a", ["app/signup.py", "app/forms.py"], ["README.md"])
