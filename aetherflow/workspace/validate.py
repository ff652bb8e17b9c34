"""Validation in the run's worktree: a syntax check per changed file, and the check commands from aetherflow.toml.

Check commands run without a shell, in their own process group (a timeout kills the whole group, grandchildren
included), with output truncated to head + tail and an environment stripped of anything named like a secret.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import tempfile
import time
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from pydantic import BaseModel

from aetherflow.errors import UnsafePathError
from aetherflow.workspace.safety import safe_relpath

MAX_OUTPUT_CHARS = 8000
# How far a head-and-tail cut may move back to a line break or space (see _read_head_tail).
CUT_SNAP_BYTES = 1000
# Names of variables a check command never sees: keys, tokens, secrets, passwords, credentials, cookies.
# `_PWD` and `_PAT` at the end: MYSQL_PWD (the MySQL client's password) and GITHUB_PAT / GH_PAT (a personal access
# token), without catching PWD and OLDPWD, the shell's folders.
_SECRET_NAME = re.compile(
    r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL|AUTH|COOKIE|SESSION|PRIVATE|_PASS$|^PASS|_PWD$|_PAT$",
    re.I,
)
# Values that carry a password whatever their name (postgres://user:pw@host).
_URL_WITH_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@")

# Extensions checked with tree-sitter: grammars that parse ordinary modern code without false alarms.
_TREE_SITTER = {
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "tsx",
    ".go": "go", ".rs": "rust", ".java": "java", ".c": "c", ".h": "c",
    ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".hpp": "cpp", ".hh": "cpp",
    ".rb": "ruby", ".sh": "bash", ".bash": "bash", ".css": "css", ".php": "php", ".cs": "csharp",
    ".kt": "kotlin", ".swift": "swift", ".scala": "scala", ".lua": "lua",
}  # fmt: skip


class CheckResult(BaseModel):
    """The outcome of one check: a syntax check of a file (`syntax:PATH`) or a configured command."""

    name: str
    ok: bool
    output: str
    duration_s: float


def scrubbed_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """`environ` (default: os.environ) without variables named like secrets or holding a URL with a password."""
    source = os.environ if environ is None else environ
    return {
        name: value
        for name, value in source.items()
        if not _SECRET_NAME.search(name) and not _URL_WITH_PASSWORD.search(value)
    }


# ----- syntax ---------------------------------------------------------------------------------------------------


def _python_error(text: str, rel: str) -> str | None:
    try:
        compile(text, rel, "exec", dont_inherit=True)
    except SyntaxError as exc:
        return f"{rel}:{exc.lineno}:{exc.offset}: {exc.msg}"
    except ValueError as exc:  # source with NUL bytes
        return f"{rel}: {exc}"
    return None


def _json_error(text: str, rel: str) -> str | None:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return f"{rel}:{exc.lineno}:{exc.colno}: {exc.msg}"
    return None


def _toml_error(text: str, rel: str) -> str | None:
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return f"{rel}: {exc}"
    return None


def _yaml_error(text: str, rel: str) -> str | None:
    try:
        import yaml
    except ImportError:
        return None  # no parser installed: nothing to say
    try:
        list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        return f"{rel}: {exc}"
    return None


def _tree_sitter_error(text: str, rel: str, language: str) -> str | None:
    from tree_sitter_language_pack import get_parser

    tree = get_parser(language).parse(text.encode("utf-8"))  # type: ignore[arg-type]
    if not tree.root_node.has_error:
        return None
    node = tree.root_node
    while True:
        bad = next((c for c in node.children if c.has_error or c.type == "ERROR" or c.is_missing), None)
        if bad is None or node.type == "ERROR" or node.is_missing:
            break
        node = bad
    row, col = node.start_point
    what = f"missing {node.type}" if node.is_missing else "unexpected syntax"
    return f"{rel}:{row + 1}:{col + 1}: {what} ({language} parser)"


def _syntax_error(text: str, rel: str) -> tuple[bool, str | None]:
    """(checked, error) for one file; `checked` is False when no parser exists for its type."""
    suffix = Path(rel).suffix.lower()
    checkers = {".py": _python_error, ".pyi": _python_error, ".json": _json_error, ".toml": _toml_error}
    if suffix in checkers:
        return True, checkers[suffix](text, rel)
    if suffix in (".yaml", ".yml"):
        return True, _yaml_error(text, rel)
    if suffix in _TREE_SITTER:
        return True, _tree_sitter_error(text, rel, _TREE_SITTER[suffix])
    return False, None


def syntax_check(root: Path, paths: list[str]) -> list[CheckResult]:
    """One `syntax:PATH` result per existing text file whose type has a parser; other files are skipped."""
    results = []
    for user_path in paths:
        try:
            rel = safe_relpath(root, user_path)
        except UnsafePathError as exc:
            results.append(CheckResult(name=f"syntax:{user_path}", ok=False, output=exc.message, duration_s=0.0))
            continue
        path = root / rel
        if not path.is_file():
            continue
        started = time.perf_counter()
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            continue  # binary content: no syntax to check
        checked, error = _syntax_error(text, rel)
        if checked:
            took = time.perf_counter() - started
            results.append(CheckResult(name=f"syntax:{rel}", ok=error is None, output=error or "ok", duration_s=took))
    return results


# ----- check commands -------------------------------------------------------------------------------------------


def _read_head_tail(fh: IO[bytes], limit: int = MAX_OUTPUT_CHARS) -> str:
    """The output file's text, or its head and tail around a marker when it is longer than `limit`.

    The cuts fall on a line break (else a space) near the limit: the output is redacted only after this, and a
    secret cut in two (`ghp_A1b2` ... `C3d4E5f6`) would no longer be recognisable as one.
    """
    size = fh.seek(0, os.SEEK_END)
    fh.seek(0)
    if size <= limit:
        return fh.read().decode("utf-8", "replace")
    half = limit // 2
    head = _snap_head(fh.read(half))
    fh.seek(size - half)
    tail = _snap_tail(fh.read(half))
    cut = size - len(head) - len(tail)
    return f"{head.decode('utf-8', 'replace')}\n[... {cut} characters cut ...]\n{tail.decode('utf-8', 'replace')}"


def _snap_head(head: bytes) -> bytes:
    """`head` ended after its last line break (else space) within the last CUT_SNAP_BYTES, when it has one."""
    start = max(0, len(head) - CUT_SNAP_BYTES)
    for separator in (b"\n", b" "):
        at = head.rfind(separator, start)
        if at != -1:
            return head[: at + 1]
    return head


def _snap_tail(tail: bytes) -> bytes:
    """`tail` started after its first line break (else space) within the first CUT_SNAP_BYTES, when it has one."""
    for separator in (b"\n", b" "):
        at = tail.find(separator, 0, CUT_SNAP_BYTES)
        if at != -1:
            return tail[at + 1 :]
    return tail


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


async def _wait_or_kill(proc: asyncio.subprocess.Process, timeout_s: float) -> bool:
    """Wait for the command; on timeout or cancellation kill its whole process group. True if it timed out.

    After a normal exit the group is killed too, so children it left behind (a server a test forgot) do not
    outlive the check.
    """
    try:
        await asyncio.wait_for(proc.wait(), timeout_s)
    except TimeoutError:
        _kill_group(proc)
        await proc.wait()
        return True
    except asyncio.CancelledError:
        _kill_group(proc)
        raise
    _kill_group(proc)
    return False


async def run_check(root: Path, name: str, command: str, timeout_s: float) -> CheckResult:
    """Run a configured check command in `root` (shlex-split, no shell) within `timeout_s`.

    `ok` is True only for exit code 0 within the time limit. Output (stdout and stderr together) is truncated
    to head + tail. The environment has no variable named like a key, token, secret or password.
    """
    started = time.perf_counter()
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        return CheckResult(name=name, ok=False, output=f"cannot parse the command {command!r}: {exc}", duration_s=0.0)
    if not argv:
        return CheckResult(name=name, ok=False, output="the check command is empty", duration_s=0.0)
    # Output goes to an unnamed file, not a pipe: a background child that inherits it cannot keep us waiting,
    # and only the head and tail are ever read back into memory.
    with tempfile.TemporaryFile() as out:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, cwd=root, env=scrubbed_env(), stdin=asyncio.subprocess.DEVNULL,
                stdout=out, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            output = f"cannot start {argv[0]!r}: {exc.strerror or exc}. Check the command in aetherflow.toml [checks]."
            return CheckResult(name=name, ok=False, output=output, duration_s=time.perf_counter() - started)
        timed_out = await _wait_or_kill(proc, timeout_s)
        output = _read_head_tail(out)
    if timed_out:
        output += f"\n[timed out after {timeout_s:g} s: the command and its children were killed]"
    ok = not timed_out and proc.returncode == 0
    return CheckResult(name=name, ok=ok, output=output, duration_s=time.perf_counter() - started)
