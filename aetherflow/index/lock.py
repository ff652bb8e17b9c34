"""One indexer at a time: an advisory lock on `.aetherflow/index.lock`, plus a "pending update" marker.

The lock is `fcntl.flock` on an open file, so the kernel releases it when its holder exits, however it exits
(Ctrl-C, SIGKILL, crash): a stale lock file never blocks anyone. The holder writes its pid and start time into
the file so that a second indexer can say who holds it.

The post-commit hook must never wait. When it finds the lock taken it leaves the pending marker; the holder
looks for the marker after releasing the lock and runs once more when it is there (see `run_serialised`).
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TypeVar

from pydantic import BaseModel

from aetherflow import paths

LOCK_NAME = "index.lock"
PENDING_NAME = "index.pending"
_POLL_S = 0.1

T = TypeVar("T")


class LockHolder(BaseModel):
    """Who holds the index lock, as its holder wrote it."""

    pid: int
    started: float
    command: str

    def describe(self) -> str:
        started = time.strftime("%H:%M:%S", time.localtime(self.started))
        return f"pid {self.pid} ({self.command}), since {started}"


class IndexLock:
    """An exclusive, process-wide lock on the repository's index.

    Two `IndexLock` objects on the same file exclude each other even inside one process, because `flock`
    locks belong to the open file description, not to the process.
    """

    def __init__(self, repo_root: Path) -> None:
        self.path = paths.ensure_state_dir(repo_root) / LOCK_NAME
        self._handle: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._handle is not None

    def acquire(self, timeout_s: float = 0.0) -> bool:
        """Take the lock, waiting up to `timeout_s` seconds (0: try once). True when taken."""
        if self._handle is not None:
            return True
        handle = self.path.open("a+", encoding="utf-8")
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.close()
                    return False
                time.sleep(_POLL_S)
        self._handle = handle
        self._write_holder(handle)
        return True

    def _write_holder(self, handle: IO[str]) -> None:
        holder = LockHolder(pid=os.getpid(), started=time.time(), command=" ".join(_command_line()))
        handle.seek(0)
        handle.truncate()
        handle.write(holder.model_dump_json())
        handle.flush()

    def release(self) -> None:
        """Release the lock (no-op when not held)."""
        if self._handle is None:
            return
        fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None

    def holder(self) -> LockHolder | None:
        """The current holder as recorded in the lock file, or None when nobody holds the lock."""
        if self._handle is not None:
            return LockHolder.model_validate_json(self.path.read_text(encoding="utf-8"))
        if not self.path.exists():
            return None
        with self.path.open("r", encoding="utf-8") as probe:
            try:
                fcntl.flock(probe.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _parse_holder(probe.read())
            fcntl.flock(probe.fileno(), fcntl.LOCK_UN)
        return None

    def __enter__(self) -> IndexLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _parse_holder(text: str) -> LockHolder:
    try:
        return LockHolder.model_validate(json.loads(text))
    except (ValueError, TypeError):
        # The holder took the lock but has not written its record yet (a window of microseconds).
        return LockHolder(pid=0, started=time.time(), command="another process starting up")


def _command_line() -> list[str]:
    argv = [Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python", *sys.argv[1:]]
    return argv[:6]


class PendingMarker:
    """A file saying "an update was requested while the index was locked"."""

    def __init__(self, repo_root: Path) -> None:
        self.path = paths.ensure_state_dir(repo_root) / PENDING_NAME

    def set(self) -> None:
        self.path.write_text(f"{time.time()}\n", encoding="utf-8")

    def is_set(self) -> bool:
        return self.path.exists()

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def run_serialised(repo_root: Path, work: Callable[[], T], timeout_s: float) -> tuple[bool, list[T]]:
    """Run `work` under the index lock, then again while a pending update was requested meanwhile.

    Returns (got the lock, results of each run). The pending marker is checked after every release, and a
    requester re-tries the lock after leaving its marker (`request_or_run`), so a request is never lost:
    either the requester gets the lock, or the holder sees the marker after it lets go.
    """
    lock = IndexLock(repo_root)
    pending = PendingMarker(repo_root)
    results: list[T] = []
    wait = timeout_s
    while lock.acquire(wait):
        try:
            pending.clear()
            results.append(work())
        finally:
            lock.release()
        if not pending.is_set():
            break
        wait = 0.0  # someone else may hold it now; they will see the marker when they finish
    return bool(results), results


def request_or_run(repo_root: Path, work: Callable[[], T]) -> list[T]:
    """The post-commit path: run `work` if the lock is free, else leave the pending marker and return at once."""
    got, results = run_serialised(repo_root, work, timeout_s=0.0)
    if got:
        return results
    PendingMarker(repo_root).set()
    # The holder may have released and checked the marker between our try and our write: try once more.
    _, results = run_serialised(repo_root, work, timeout_s=0.0)
    return results
