"""The ToolBox: the only way an agent's model acts on the world, and the reason prompt injection is harmless.

A model can ask for anything; the ToolBox runs only the allowlisted tools of the agent, each through the
workspace's safety path (paths resolved inside the run's worktree, protected files refused), and `run_check`
only runs a command configured in aetherflow.toml under the name the model gives. Every failure, including invalid
arguments from a confused or hostile model, comes back as a ToolResult the model can read and act on, never as an
exception that would end the run. Outputs are redacted (secrets printed by a test never reach a cloud model) and
truncated (head and tail kept) before the model sees them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ValidationError

from aetherflow.config.models import ChecksConfig, ToolName
from aetherflow.errors import AetherError
from aetherflow.events import EventBus, ToolExecuted
from aetherflow.llm.types import ToolCall, ToolSpec
from aetherflow.orchestrator import repo_grep
from aetherflow.orchestrator.tool_specs import (
    ARGUMENT_MODELS,
    TOOL_SPECS,
    WRITING_TOOLS,
    CreateFileArgs,
    DeleteFileArgs,
    EditFileArgs,
    GrepArgs,
    ListDirArgs,
    ReadFileArgs,
    RunCheckArgs,
    SearchCodeArgs,
)
from aetherflow.workspace.edits import EditError
from aetherflow.workspace.worktree import EditOutcome

__all__ = ["NO_INDEX", "TOOL_SPECS", "ToolBox", "ToolResult", "truncate_middle"]

log = logging.getLogger(__name__)

SUMMARY_CHARS = 200
EVENT_ARGUMENT_CHARS = 500
NO_CHECKS = "none (the user can add them under [checks.commands] in aetherflow.toml)"
NO_INDEX = "no index: run `aether index` to build one; until then use grep, list_dir and read_file"

SearchCode = Callable[[str, int], list[str]]


class CheckOutcome(Protocol):
    """What a check runner returns (aetherflow.workspace.validate.CheckResult has this shape)."""

    name: str
    ok: bool
    output: str
    duration_s: float


CheckRunner = Callable[[Path, str, str, float], Awaitable[CheckOutcome]]


class ToolWorkspace(Protocol):
    """The part of aetherflow.workspace.Workspace the tools use (paths are repository-relative)."""

    @property
    def root(self) -> Path: ...

    def read_text(self, rel: str, start_line: int | None = None, end_line: int | None = None) -> str: ...

    def list_dir(self, rel: str = ".") -> list[str]: ...

    def exists(self, rel: str) -> bool: ...

    async def edit(self, rel: str, search: str, replace: str) -> EditOutcome: ...

    async def write_file(self, rel: str, content: str, *, create_only: bool = False) -> EditOutcome: ...

    async def delete_file(self, rel: str) -> EditOutcome: ...


class TextRedactor(Protocol):
    """Replaces secrets in text (aetherflow.llm.redact.Redactor); returns the text and how many were replaced."""

    def redact_text(self, text: str) -> tuple[str, int]: ...


class ToolResult(BaseModel):
    """What the model reads back after a tool call; `ok` False means the call failed and `content` says why."""

    ok: bool
    content: str
    # The repository-relative path a successful edit_file / create_file / delete_file changed.
    changed_path: str | None = None


def truncate_middle(text: str, max_chars: int, hint: str = "") -> str:
    """`text` cut to about `max_chars`, keeping its head and tail around a "[... N characters cut ...]" marker."""
    if len(text) <= max_chars:
        return text
    # Room for the marker is kept inside max_chars, so truncating the result again changes nothing.
    keep = max(0, max_chars - 60 - len(hint))
    head = keep * 3 // 5
    tail = keep - head
    cut = len(text) - head - tail
    marker = f"\n[... {cut} characters cut{'; ' + hint if hint else ''} ...]\n"
    return text[:head] + marker + text[len(text) - tail :]


async def _default_check_runner(root: Path, name: str, command: str, timeout_s: float) -> CheckOutcome:
    # Imported here: validation pulls in parsers the agent loop does not otherwise need.
    from aetherflow.workspace.validate import run_check

    return await run_check(root, name, command, timeout_s)


class ToolBox:
    """The tools one agent may use in one run's worktree.

    `allowed` is the agent's tool list from its prototype; `checks` names the commands run_check may run;
    `search_code(query, k)` searches the index (None when there is none). Tool runs are published as
    ToolExecuted events on `bus`. `changed_paths` lists the files successfully written, in order.
    """

    def __init__(
        self,
        workspace: ToolWorkspace,
        allowed: Sequence[ToolName],
        checks: ChecksConfig,
        *,
        search_code: SearchCode | None = None,
        bus: EventBus | None = None,
        run_id: str | None = None,
        task_id: str | None = None,
        redactor: TextRedactor | None = None,
        max_output_chars: int = 8000,
        check_runner: CheckRunner | None = None,
    ) -> None:
        self.workspace = workspace
        self.allowed: list[ToolName] = [name for name in TOOL_SPECS if name in set(allowed)]
        self.checks = checks
        self.search_code = search_code
        self.bus = bus
        self.run_id = run_id
        self.task_id = task_id
        self.redactor = redactor
        self.max_output_chars = max_output_chars
        self.check_runner: CheckRunner = check_runner or _default_check_runner
        self.changed_paths: list[str] = []
        self.write_count = 0

    def specs(self) -> list[ToolSpec]:
        """The specs of the allowed tools, in a stable order."""
        return [TOOL_SPECS[name] for name in self.allowed]

    async def execute(self, call: ToolCall) -> ToolResult:
        """Run `call` and return what the model should read. Only cancellation (a BaseException) propagates."""
        try:
            result = await self._dispatch(call)
        except Exception as exc:  # noqa: BLE001 - a model's input must never crash a run; the failure is reported.
            log.exception("tool %s failed unexpectedly", call.name)
            result = ToolResult(ok=False, content=f"{call.name} failed unexpectedly ({type(exc).__name__}: {exc})")
        result = self._finish(result)
        self._publish(call, result)
        return result

    # ---- dispatch ---------------------------------------------------------------------------------------

    async def _dispatch(self, call: ToolCall) -> ToolResult:
        refusal = self._refusal(call.name)
        if refusal is not None:
            return ToolResult(ok=False, content=refusal)
        name: ToolName = call.name  # type: ignore[assignment]  # checked by _refusal
        try:
            raw = call.parsed_arguments()
        except ValueError as exc:
            return ToolResult(ok=False, content=f"invalid arguments for {name}: {exc}. Send one JSON object "
                              f"with the fields {_fields(name)}.")
        try:
            args = ARGUMENT_MODELS[name].model_validate(raw)
        except ValidationError as exc:
            return ToolResult(ok=False, content=f"invalid arguments for {name}: {_validation_text(exc)}. "
                              f"Fields: {_fields(name)}.")
        try:
            result = await self._run(args)
        except (EditError, AetherError, repo_grep.GrepError) as exc:
            return ToolResult(ok=False, content=_error_text(exc))
        except (OSError, ValueError) as exc:
            return ToolResult(ok=False, content=_os_error_text(name, exc, args.model_dump().get("path")))
        if result.ok and name in WRITING_TOOLS:
            self.write_count += 1
        return result

    def _refusal(self, name: str) -> str | None:
        available = ", ".join(self.allowed) or "none"
        if name not in TOOL_SPECS:
            return f"unknown tool '{name}'. The only tools are: {available}. No other command can be run."
        if name not in self.allowed:
            return f"tool '{name}' is not available to this agent. Available tools: {available}."
        return None

    async def _run(self, args: BaseModel) -> ToolResult:
        if isinstance(args, ReadFileArgs):
            return self._read_file(args)
        if isinstance(args, ListDirArgs):
            return self._list_dir(args)
        if isinstance(args, SearchCodeArgs):
            return self._search(args)
        if isinstance(args, GrepArgs):
            return await self._grep(args)
        if isinstance(args, EditFileArgs):
            return self._written(await self.workspace.edit(args.path, args.search, args.replace))
        if isinstance(args, CreateFileArgs):
            return self._written(await self.workspace.write_file(args.path, args.content, create_only=True))
        if isinstance(args, DeleteFileArgs):
            return self._written(await self.workspace.delete_file(args.path))
        if isinstance(args, RunCheckArgs):
            return await self._run_check(args)
        raise TypeError(f"no handler for {type(args).__name__}")

    # ---- the tools --------------------------------------------------------------------------------------

    def _read_file(self, args: ReadFileArgs) -> ToolResult:
        if args.start_line and args.end_line and args.end_line < args.start_line:
            return ToolResult(ok=False, content=f"end_line {args.end_line} is before start_line {args.start_line}")
        text = self.workspace.read_text(args.path, args.start_line, args.end_line)
        if not text:
            return ToolResult(ok=True, content="(no content in that range)" if args.start_line else "(empty file)")
        return ToolResult(ok=True, content=truncate_middle(
            text, self.max_output_chars, "read a smaller range with start_line and end_line"))

    def _list_dir(self, args: ListDirArgs) -> ToolResult:
        entries = self.workspace.list_dir(args.path or ".")
        return ToolResult(ok=True, content="\n".join(entries) if entries else "(empty folder)")

    def _search(self, args: SearchCodeArgs) -> ToolResult:
        if self.search_code is None:
            return ToolResult(ok=False, content=NO_INDEX)
        # Called on the event loop on purpose: the embedded vector store must not be used from several threads.
        hits = self.search_code(args.query, args.k)
        if not hits:
            return ToolResult(ok=True, content=f"no results for {args.query!r}; try grep with a literal name")
        return ToolResult(ok=True, content="\n\n".join(hits))

    async def _grep(self, args: GrepArgs) -> ToolResult:
        repo_grep.compile_pattern(args.pattern)  # fail fast with a clear message before touching files
        outcome = await asyncio.to_thread(
            repo_grep.grep_files, self.workspace.root, args.pattern,
            path_glob=args.path_glob, max_results=args.max_results,
        )
        return ToolResult(ok=True, content=repo_grep.format_outcome(args.pattern, outcome))

    def _written(self, outcome: EditOutcome) -> ToolResult:
        if outcome.path not in self.changed_paths:
            self.changed_paths.append(outcome.path)
        return ToolResult(ok=True, content=outcome.message, changed_path=outcome.path)

    async def _run_check(self, args: RunCheckArgs) -> ToolResult:
        command = self.checks.commands.get(args.name)
        if command is None:
            configured = ", ".join(sorted(self.checks.commands)) or NO_CHECKS
            return ToolResult(ok=False, content=f"unknown check '{args.name}'. Configured checks: {configured}.")
        result = await self.check_runner(self.workspace.root, args.name, command, self.checks.timeout_s)
        verdict = "passed" if result.ok else "FAILED"
        header = f"check '{args.name}' {verdict} in {result.duration_s:.1f} s"
        body = result.output.strip()
        return ToolResult(ok=result.ok, content=f"{header}\n{body}" if body else header)

    # ---- output -----------------------------------------------------------------------------------------

    def _finish(self, result: ToolResult) -> ToolResult:
        # Redact before truncating: a cut through the middle of a secret could hide it from the detector.
        content = self._redact(result.content)
        return result.model_copy(update={"content": truncate_middle(content, self.max_output_chars)})

    def _redact(self, text: str) -> str:
        if self.redactor is None:
            return text
        redacted, _count = self.redactor.redact_text(text)
        return redacted

    def _publish(self, call: ToolCall, result: ToolResult) -> None:
        if self.bus is None:
            return
        first_line = result.content.strip().splitlines()[0] if result.content.strip() else ""
        self.bus.publish(ToolExecuted(
            run_id=self.run_id, task_id=self.task_id, name=call.name[:100],
            arguments=truncate_middle(self._redact(call.arguments), EVENT_ARGUMENT_CHARS),
            ok=result.ok, summary=truncate_middle(first_line, SUMMARY_CHARS),
        ))


def _error_text(exc: BaseException) -> str:
    # AetherError.__str__ adds the hint with an arrow meant for terminals; the model gets message and hint.
    if isinstance(exc, AetherError):
        return f"{exc.message} {exc.hint}" if exc.hint else exc.message
    return str(exc)


def _os_error_text(name: str, exc: OSError | ValueError, path: object) -> str:
    """A file-system failure in words the model can act on; never the worktree's absolute path."""
    target = f"'{path}'" if isinstance(path, str) else "that path"
    if isinstance(exc, FileNotFoundError):
        return f"{target} does not exist; use list_dir to see what exists"
    if isinstance(exc, IsADirectoryError):
        return f"{target} is a folder; use list_dir to see its files"
    if isinstance(exc, NotADirectoryError):
        return f"{target} is not a folder (or a part of it is a file)"
    if isinstance(exc, FileExistsError):
        return f"{target} already exists; use edit_file to change it"
    if isinstance(exc, UnicodeDecodeError):
        return f"{target} is not UTF-8 text (binary?) and cannot be read as text"
    if isinstance(exc, PermissionError):
        return f"{target} cannot be accessed (permission denied)"
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"{name} failed on {target}: {reason}"


def _fields(name: ToolName) -> str:
    properties = TOOL_SPECS[name].parameters.get("properties", {})
    required = set(TOOL_SPECS[name].parameters.get("required", []))
    return ", ".join(f"{key}{'' if key in required else '?'}" for key in properties) or "none"


def _validation_text(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "arguments"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)
