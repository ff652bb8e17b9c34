"""Runs one subtask for the scheduler: the agent's tool loop, then a syntax check of what it changed.

A failed syntax check goes back to the same agent for one fix round; if it still fails, the executor raises so
that the scheduler's fallback strategy retries the subtask on the next stronger model (the brief's escalation).

Every subtask writes into the run's one worktree, so the executor records, per subtask, each file as it was
before the subtask first wrote it. When the scheduler gives a subtask up (failed, stopped by the budget, or
cancelled), `discard` puts those files back: half-done work (a file created just before a provider storm, the first
of two edits) must never reach the change set, where `aether run --yes` would apply it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from aetherflow.config.models import AgentConfig, ToolName
from aetherflow.errors import AetherError
from aetherflow.events import ValidationFinished
from aetherflow.llm.types import ImagePart
from aetherflow.orchestrator.agent import AgentLimits, AgentResult, run_agent
from aetherflow.orchestrator.attempts import AttemptLog, Session, ValidationFailed, until_checks_pass
from aetherflow.orchestrator.context import RunContext
from aetherflow.orchestrator.plan import TaskSpec
from aetherflow.orchestrator.router import RouteDecision
from aetherflow.orchestrator.scheduler import TaskOutcome
from aetherflow.orchestrator.scope import budget_chars, default_target, files_in_scope
from aetherflow.orchestrator.sessions import LoopSession
from aetherflow.orchestrator.tools import ToolBox
from aetherflow.orchestrator.validation_run import run_checks
from aetherflow.orchestrator.whole_agent import WHOLE_PROMPT, WholeFileAgent
from aetherflow.prompts import load_prompt
from aetherflow.services import Services
from aetherflow.workspace.safety import real_relpath, safe_relpath
from aetherflow.workspace.validate import CheckResult, run_check, syntax_check
from aetherflow.workspace.worktree import EditOutcome, Workspace

T = TypeVar("T")


class TaskRecord(BaseModel):
    """What the executor learned about a subtask beyond its outcome (for the ledger)."""

    validation_first_try: bool | None = None
    edits: list[str] = []


def _read(path: Path) -> tuple[bytes | None, int | None]:
    """The file's bytes and permission bits; (None, None) when there is no file."""
    try:
        return path.read_bytes(), path.stat().st_mode & 0o777
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None, None


@dataclass
class _Written:
    """One file a subtask wrote: as it was before its first write, and as its last write left it."""

    before: bytes | None
    mode: int | None
    after: bytes | None


class TaskWrites:
    """The files one subtask wrote in the shared worktree, so that they can be put back if it gives up."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: dict[str, _Written] = {}

    def before_write(self, real: str) -> None:
        """Remember the file as it is now, unless this subtask already wrote it (then its first state stands)."""
        if real not in self.files:
            data, mode = _read(self.root / real)
            self.files[real] = _Written(before=data, mode=mode, after=data)

    def after_write(self, real: str) -> None:
        """Remember what the write left (unchanged when it failed)."""
        self.files[real].after = _read(self.root / real)[0]

    def undo(self) -> list[str]:
        """Put back every file this subtask changed; returns those paths.

        A file another subtask wrote since is left as it is: the other subtask's work wins over taking back this
        one's (their edits cannot be told apart in one file).
        """
        restored = []
        for real, written in sorted(self.files.items()):
            path = self.root / real
            if written.before == written.after or _read(path)[0] != written.after:
                continue
            if written.before is None:
                path.unlink(missing_ok=True)
            else:
                tmp = path.with_name(f".{path.name}.aether-undo")
                tmp.write_bytes(written.before)
                os.chmod(tmp, written.mode if written.mode is not None else 0o644)
                os.replace(tmp, path)
            restored.append(real)
        self.files.clear()
        return restored


async def _uninterrupted(action: Awaitable[T]) -> T:
    """Await a file write; if the caller is cancelled meanwhile, let the write finish first (it runs in a thread
    that cancelling cannot stop), then re-raise: afterwards the file is in a known state that can be put back."""
    inner = asyncio.ensure_future(action)
    try:
        return await asyncio.shield(inner)
    except asyncio.CancelledError:
        await asyncio.wait([inner])
        if not inner.cancelled():
            inner.exception()  # retrieved here: the cancellation is what propagates
        raise


class _RecordingWorkspace:
    """The worktree as one subtask's ToolBox sees it: reads pass through, writes are recorded in `writes`.

    Each write holds the executor's lock for its file, shared by every subtask, so the state remembered before a
    write is exactly the one the write starts from.
    """

    def __init__(self, workspace: Workspace, writes: TaskWrites, lock: Callable[[str], asyncio.Lock]) -> None:
        self._workspace = workspace
        self._writes = writes
        self._lock = lock

    @property
    def root(self) -> Path:
        return self._workspace.root

    def read_text(self, rel: str, start_line: int | None = None, end_line: int | None = None) -> str:
        return self._workspace.read_text(rel, start_line, end_line)

    def list_dir(self, rel: str = ".") -> list[str]:
        return self._workspace.list_dir(rel)

    def exists(self, rel: str) -> bool:
        return self._workspace.exists(rel)

    async def edit(self, rel: str, search: str, replace: str) -> EditOutcome:
        return await self._write(rel, lambda: self._workspace.edit(rel, search, replace))

    async def write_file(self, rel: str, content: str, *, create_only: bool = False) -> EditOutcome:
        return await self._write(rel, lambda: self._workspace.write_file(rel, content, create_only=create_only))

    async def delete_file(self, rel: str) -> EditOutcome:
        return await self._write(rel, lambda: self._workspace.delete_file(rel))

    async def _write(self, rel: str, action: Callable[[], Awaitable[EditOutcome]]) -> EditOutcome:
        try:
            real = real_relpath(self.root, safe_relpath(self.root, rel))
        except AetherError:
            return await action()  # an unsafe path: the workspace refuses it with the reason, nothing is written
        async with self._lock(real):
            self._writes.before_write(real)
            try:
                return await _uninterrupted(action())
            finally:
                self._writes.after_write(real)


class TaskExecutor:
    """The scheduler's RunTask: one attempt of one subtask in the run's workspace.

    With `check_driven` (a plan of one editing subtask, in a repository with check commands) the subtask is done
    only when the project's checks pass: see attempts.py. Otherwise its changed files get a syntax check and one
    fix round, and the run's final checks follow (validation.py).
    """

    def __init__(self, services: Services, workspace: Workspace, context: RunContext, run_id: str,
                 limits: AgentLimits | None = None, images: list[ImagePart] | None = None,
                 check_driven: bool = False,
                 is_last_route: Callable[[TaskSpec, RouteDecision], bool] | None = None) -> None:
        self.services = services
        self.workspace = workspace
        self.context = context
        self.run_id = run_id
        self.limits = limits or AgentLimits()
        self.records: dict[str, TaskRecord] = {}
        # The user's images go only to subtasks that need vision (the router gave those a vision model).
        self.images = images or []
        self.check_driven = check_driven
        # The check results of the worktree as the last check-driven subtask left it (see verified_checks).
        self._verified: tuple[str, list[CheckResult]] | None = None
        self._baseline_checks: list[CheckResult] | None = None
        # Whether a subtask on a route has no stronger model left to escalate to (the pipeline asks the router).
        self.is_last_route = is_last_route or (lambda task, route: True)
        self._writes: dict[str, TaskWrites] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, real: str) -> asyncio.Lock:
        return self._locks.setdefault(real, asyncio.Lock())

    async def discard(self, task_id: str) -> list[str]:
        """Put back the files subtask `task_id` wrote, because it ends without finishing; returns their paths."""
        writes = self._writes.pop(task_id, None)
        if writes is None:
            return []
        async with contextlib.AsyncExitStack() as held:
            # Every one of its files, in a fixed order: no other subtask is half-way through writing one of them.
            for real in sorted(writes.files):
                await held.enter_async_context(self._lock(real))
            return writes.undo()

    def verified_checks(self) -> list[CheckResult] | None:
        """The configured checks' results when they were run on exactly the worktree as it is now, else None
        (so the run's final checks need not run the tests again)."""
        if self._verified is None or self._verified[0] != tree_fingerprint(self.workspace):
            return None
        return self._verified[1]

    async def __call__(
        self, task: TaskSpec, route: RouteDecision, deps: dict[str, TaskOutcome], attempt: int
    ) -> TaskOutcome:
        if self.check_driven and task.expected_output.format == "edits" and self.services.settings.checks.commands:
            return await self._until_checks_pass(task, route, deps, attempt)
        session = self._session(task, route, deps)
        result = await session.first(None)
        if result.status == "failed":
            return TaskOutcome(task_id=task.id, status="failed", error=result.reason, cost_usd=result.cost_usd)
        failures = self._syntax(task.id, result.edits)
        record = self.records.setdefault(task.id, TaskRecord())
        record.validation_first_try = not failures if attempt == 1 else record.validation_first_try
        if failures:
            result = await session.fix("\n".join(f"{f.name}: {f.output}" for f in failures))
            failures = self._syntax(task.id, result.edits) if result.status == "done" else failures
            if failures:
                raise ValidationFailed(f"validation still fails after a fix round: {failures[0].output[:300]}")
        record.edits = sorted(set(record.edits) | set(result.edits))
        self._writes.pop(task.id, None)  # finished: its writes stay
        return TaskOutcome(task_id=task.id, status="done", output=result.text, cost_usd=result.cost_usd)

    async def _until_checks_pass(
        self, task: TaskSpec, route: RouteDecision, deps: dict[str, TaskOutcome], attempt: int
    ) -> TaskOutcome:
        checks = self.services.settings.checks
        log = AttemptLog()
        record = self.records.setdefault(task.id, TaskRecord())
        baseline = await self._baseline()
        try:
            result = await until_checks_pass(
                lambda: self._session(task, route, deps), lambda paths: self._verify(task.id, paths),
                lambda: self.discard(task.id), log, samples=checks.samples, fix_rounds=checks.fix_rounds,
                fingerprint=lambda: tree_fingerprint(self.workspace),
            )
        except ValidationFailed:
            kept = _kept_despite_failing_before(log, baseline, self.is_last_route(task, route))
            if kept is None:
                raise
            result = kept
        finally:
            if attempt == 1:
                record.validation_first_try = log.first_try_ok
        self._verified = (tree_fingerprint(self.workspace), log.checks)
        record.edits = sorted(set(record.edits) | set(result.edits))
        self._writes.pop(task.id, None)
        return TaskOutcome(task_id=task.id, status="done", output=result.text, cost_usd=log.cost_usd)

    async def _baseline(self) -> list[CheckResult]:
        """The configured checks on the run's base tree, run once per run (before any subtask has written)."""
        if self._baseline_checks is None:
            settings = self.services.settings.checks
            self._baseline_checks = [
                await run_check(self.workspace.root, name, command, settings.timeout_s)
                for name, command in settings.commands.items()
            ]
        return self._baseline_checks

    def _session(self, task: TaskSpec, route: RouteDecision, deps: dict[str, TaskOutcome]) -> Session:
        """A new candidate conversation for `task` on `route`, in its model's edit format."""
        settings = self.services.settings
        agent = settings.agents[route.agent]
        model = settings.models[route.alias]
        toolbox = self._toolbox(task, agent.tools)
        outputs = {dep_id: outcome.output for dep_id, outcome in deps.items()}
        system_prompt = load_prompt(agent.prompt, self.services.repo_root)
        if model.edit_mode == "whole" and task.expected_output.format == "edits":
            reply_tokens = min(agent.max_output_tokens, model.context_window // 3)
            hits = self.context.hit_paths(task) if self.context.available else []
            scope = files_in_scope(self.workspace.root, task, hits, budget_chars(model.context_window, reply_tokens))
            return WholeFileAgent(
                self.services.gateway, task=task, alias=route.alias, agent=agent, agent_name=route.agent,
                system_prompt=system_prompt, protocol_prompt=load_prompt(WHOLE_PROMPT), scope=scope,
                default_path=default_target(scope, task), toolbox=toolbox, dependency_outputs=outputs,
                note=None, run_id=self.run_id,
            )

        async def loop(configured: AgentConfig, note: str | None) -> AgentResult:
            return await run_agent(
                self.services.gateway, task=task, alias=route.alias, agent=configured,
                system_prompt=system_prompt, context=self.context.task_context(task), dependency_outputs=outputs,
                toolbox=self._toolbox(task, agent.tools), limits=self.limits,
                supports_tools=model.edit_mode == "tools", run_id=self.run_id, extra_note=note,
                agent_name=route.agent, images=self.images if task.needs_vision else None,
            )

        return LoopSession(agent, loop)

    def _toolbox(self, task: TaskSpec, tools: list[ToolName]) -> ToolBox:
        services, settings = self.services, self.services.settings
        writes = self._writes.setdefault(task.id, TaskWrites(self.workspace.root))
        return ToolBox(
            _RecordingWorkspace(self.workspace, writes, self._lock), tools, settings.checks,
            search_code=self.context.search_code if self.context.available else None,
            bus=services.bus, run_id=self.run_id, task_id=task.id,
            redactor=services.redactor if settings.privacy.redact_secrets else None,
        )

    async def _verify(self, task_id: str, paths: list[str]) -> list[CheckResult]:
        """The syntax of the changed files, then (when that passes) the configured check commands."""
        failures = self._syntax(task_id, paths)
        if failures:
            return failures
        return await run_checks(self.services, self.workspace, self.run_id)

    def _syntax(self, task_id: str, paths: list[str]) -> list[CheckResult]:
        existing = sorted({p for p in paths if self.workspace.exists(p)})
        if not existing:
            return []
        results = syntax_check(self.workspace.root, existing)
        for result in results:
            self.services.bus.publish(ValidationFinished(
                run_id=self.run_id, task_id=task_id, step=result.name, ok=result.ok, output=result.output[:2000],
            ))
        return [r for r in results if not r.ok]


def _kept_despite_failing_before(log: AttemptLog, baseline: list[CheckResult], last: bool) -> AgentResult | None:
    """The answer to keep when no candidate passed every check: only on the last model of the cascade, only when
    the checks it still fails were failing before the change too (a repository whose tests already fail must
    still get its change), and never one that breaks a check that passed before."""
    failing_before = {r.name for r in baseline if not r.ok}
    failing_now = {r.name for r in log.checks if not r.ok}
    if not last or log.kept is None or not failing_before or not failing_now <= failing_before:
        return None
    note = f"\n\n(The checks {', '.join(sorted(failing_now))} still fail, as they did before this change.)"
    return log.kept.model_copy(update={"text": log.kept.text + note})


def tree_fingerprint(workspace: Workspace) -> str:
    """A digest of the worktree's changes against its base: equal digests, equal trees."""
    return hashlib.sha256(workspace.changeset().model_dump_json().encode("utf-8")).hexdigest()
