"""The machinery of the apply-fault tests (items 6 and 7 of issue 7): a run's change set, and a forked child that
applies or undoes it with an audit hook that SIGKILLs it before its Nth file-system mutation or fails it with
ENOSPC from the Nth call that needs space. An audit hook observes the calls the product makes; it replaces none.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adversarial_support import Snapshot, assert_untouched, snapshot

from aetherflow.errors import AetherError
from aetherflow.workspace.apply import AppliedRecord, apply_changes
from aetherflow.workspace.changeset import ChangeSet
from aetherflow.workspace.worktree import Workspace

JWT_FILE, JWT_TEXT = "app/tokens/jwt.py", "ALGORITHM = 'HS256'\n"
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_MUTATIONS = {"os.rename", "os.remove", "os.rmdir", "os.mkdir", "os.chmod", "shutil.rmtree"}


# ---- a run's change set: delete a file, edit one the user has edited, create one in a new folder ------------


def prepare(repo: Path, run_id: str = "run-faults") -> tuple[Workspace, ChangeSet]:
    """A change set deleting README.md, editing app/auth.py (unstaged user edit inside) and creating a file in a
    new folder, built through the run's real workspace."""
    ws = Workspace.create(repo, run_id)

    async def edits() -> None:
        await ws.delete_file("README.md")
        await ws.edit("app/auth.py", "_ITERATIONS = 200_000", "_ITERATIONS = 600_000")
        await ws.write_file(JWT_FILE, JWT_TEXT)

    asyncio.run(edits())
    changeset = ws.changeset()
    assert changeset.paths() == ["README.md", "app/auth.py", JWT_FILE]
    return ws, changeset


def apply_all(repo: Path, ws: Workspace, changeset: ChangeSet) -> AppliedRecord:
    return apply_changes(repo, changeset, {p: "all" for p in changeset.paths()}, ws.user_snapshot)


def leftovers(repo: Path) -> list[str]:
    """Temp files anywhere in the tree, journals, and backups no undo record refers to."""
    state = repo / ".aetherflow"
    found = [p.relative_to(repo).as_posix() for p in repo.rglob("*.tmp") if not {".git", "worktrees"} & set(p.parts)]
    found += [p.name for p in (state / "journal").glob("*.json")]
    records = [AppliedRecord.model_validate_json(p.read_bytes()) for p in (state / "applied").glob("*.json")]
    kept = {Path(r.backup_dir).name for r in records}
    backups = state / "backups"
    found += [f"backup {d.name}" for d in (backups.iterdir() if backups.is_dir() else []) if d.name not in kept]
    return found


# ---- the child: apply or undo in a forked process, with an audit hook that kills it or fails a call ----------


def _mutation(event: str, args: tuple[Any, ...]) -> bool:
    if event == "open":
        return isinstance(args[2], int) and bool(args[2] & _WRITE_FLAGS)
    return event in _MUTATIONS


def _needs_space(event: str, args: tuple[Any, ...]) -> bool:
    """Creating a file or a folder needs space; renames, removals and writes to existing files do not."""
    if event not in ("open", "os.mkdir") or isinstance(args[0], int) or os.path.lexists(args[0]):
        return False  # an existing name needs no new space (mkdir of an existing folder fails with EEXIST first)
    return event == "os.mkdir" or (isinstance(args[2], int) and bool(args[2] & os.O_CREAT))


def kill_at(n: int) -> Callable[[str, tuple[Any, ...]], None]:
    """An audit hook that SIGKILLs the process right before its `n`th file-system mutation."""
    count = 0

    def hook(event: str, args: tuple[Any, ...]) -> None:
        nonlocal count
        if _mutation(event, args):
            count += 1
            if count == n:
                os.kill(os.getpid(), signal.SIGKILL)

    return hook


def disk_full_from(n: int) -> Callable[[str, tuple[Any, ...]], None]:
    """An audit hook that fails the `n`th call needing space, and every later one, with ENOSPC."""
    count = 0

    def hook(event: str, args: tuple[Any, ...]) -> None:
        nonlocal count
        if _needs_space(event, args):
            count += 1
            if count >= n:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(args[0]))

    return hook


@dataclass(frozen=True)
class ChildEnd:
    """How the child ended: killed, or with the error it raised (None: it succeeded)."""

    killed: bool
    error: dict[str, Any] | None


def in_child(action: Callable[[], object], hook: Callable[[str, tuple[Any, ...]], None] | None = None,
             user: tuple[int, int] | None = None) -> ChildEnd:
    """Run `action` in a forked child (with audit `hook`, as the (uid, gid) `user` if given); say how it ended."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        payload: dict[str, Any] = {"error": None}
        try:
            os.close(read)
            if user is not None:
                os.setgroups([])
                os.setgid(user[1])
                os.setuid(user[0])
            if hook is not None:
                sys.addaudithook(hook)
            action()
        except AetherError as exc:
            payload = {"error": {"type": type(exc).__name__, "message": exc.message, "hint": exc.hint or ""}}
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the test on it
            payload = {"error": {"type": type(exc).__name__, "message": repr(exc), "hint": "", "raw": True}}
        finally:
            os.write(write, json.dumps(payload).encode())
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return ChildEnd(killed=True, error=None)
    return ChildEnd(killed=False, error=json.loads(data)["error"])


def state_is(repo: Path, expected: dict[str, Snapshot]) -> str:
    """Which of the `expected` states the repository is in (fails the test, naming the difference, if none)."""
    now = snapshot(repo)
    for name, state in expected.items():
        if now == state:
            return name
    assert_untouched(expected["before"], repo)  # raises with a readable difference
    raise AssertionError("unreachable")
