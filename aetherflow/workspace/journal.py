"""The atomic file transaction behind apply and undo: back up, journal, write, complete — or roll back.

Order (each step durable before the next): back up every target's current bytes and mode under
.aetherflow/backups/<txid>/, write the journal (pending) to .aetherflow/journal/<txid>.json, write each target
through a temp file in its own folder and os.replace, then store the run's record and mark the journal complete.
A failure rolls back everything written; a crash leaves a pending journal that `recover` rolls back, or
completes when every write had landed. One transaction at a time (an flock on .aetherflow/journal/.lock).

A journal is data found in the repository, and a cloned repository can carry one: before replaying it, recovery
checks that it names only what an apply writes (normalised paths inside the repository, outside .git/ and
.aetherflow/, not protected, temp files and backups where this module puts them); anything else is set aside.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError

from aetherflow import paths
from aetherflow.errors import AetherError
from aetherflow.workspace._fs import atomic_replace, bytes_sha256, file_sha256, fsync_dir, write_durable
from aetherflow.workspace.snapshot import inside_without_links
from aetherflow.workspace.state_guard import backup_rel, check_state_dir, journal_problem, temp_rel

WriteHook = Callable[[int, str], None]
"""Test seam: called after each target is written with (number written so far, path); may raise or block."""


class Target(BaseModel):
    """What one file must become: `data` None deletes it; `mode` is used when it is (re)written."""

    path: str
    data: bytes | None
    mode: int | None = None
    # Folders to remove, deepest first, if a deletion leaves them empty (undo of an apply that created them).
    prune_dirs: list[str] = []


class JournalEntry(BaseModel):
    """One target as journalled: enough to restore it, to tell whether its write landed, and to clean up."""

    path: str
    existed: bool
    before_sha: str | None
    before_mode: int | None
    after_sha: str | None
    new_mode: int | None
    created_dirs: list[str]
    prune_dirs: list[str] = []
    tmp: str


class Journal(BaseModel):
    """A transaction in progress. `record` is stored at `record_file` on completion; None retires that file."""

    txid: str
    op: Literal["apply", "undo"]
    run_id: str
    state: Literal["pending", "complete"]
    backup_dir: str
    entries: list[JournalEntry]
    record_file: str
    record: dict | None = None


def journal_dir(repo_root: Path) -> Path:
    return paths.state_dir(repo_root) / "journal"


def backups_dir(repo_root: Path) -> Path:
    return paths.state_dir(repo_root) / "backups"


@contextmanager
def transaction_lock(repo_root: Path) -> Iterator[None]:
    """Hold the repository's apply/undo lock (released by the kernel if the process dies)."""
    check_state_dir(repo_root)
    folder = journal_dir(repo_root)
    try:
        paths.ensure_state_dir(repo_root)
        folder.mkdir(parents=True, exist_ok=True)
        fh = open(folder / ".lock", "a")  # noqa: SIM115 - closed below, after the lock is released
    except OSError as exc:
        raise AetherError(
            f"Could not take AetherFlow's apply lock in {folder} ({exc}); nothing was changed.",
            "Check free disk space and the permissions of .aetherflow/, then run the command again.",
        ) from exc
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def new_txid(op: str) -> str:
    """A unique, time-ordered transaction id."""
    return f"{time.time_ns()}-{op}"


def _save_journal(repo_root: Path, journal: Journal) -> Path:
    folder = journal_dir(repo_root)
    path = folder / f"{journal.txid}.json"
    atomic_replace(path, journal.model_dump_json(indent=1).encode(), 0o600, folder / f".{journal.txid}.tmp")
    return path


def missing_dirs(repo_root: Path, rel: str) -> list[str]:
    """Folders that writing `rel` would create, deepest first (removed again on rollback if left empty)."""
    missing = []
    parent = Path(rel).parent
    while parent != Path(".") and not (repo_root / parent).exists():
        missing.append(parent.as_posix())
        parent = parent.parent
    return missing


def _back_up(repo_root: Path, txid: str, targets: list[Target]) -> tuple[str, list[JournalEntry]]:
    backup = backup_rel(txid)
    entries = []
    for target in targets:
        path = repo_root / target.path
        existed = path.is_file()
        before_mode = path.stat().st_mode & 0o7777 if existed else None
        if existed:
            copy = repo_root / backup / target.path
            copy.parent.mkdir(parents=True, exist_ok=True)
            write_durable(copy, path.read_bytes(), 0o600)
        entries.append(
            JournalEntry(
                path=target.path,
                existed=existed,
                before_sha=file_sha256(path),
                before_mode=before_mode,
                after_sha=bytes_sha256(target.data),
                new_mode=target.mode,
                created_dirs=missing_dirs(repo_root, target.path) if target.data is not None else [],
                prune_dirs=target.prune_dirs,
                tmp=temp_rel(target.path, txid),
            )
        )
    return backup, entries


def _write_one(repo_root: Path, entry: JournalEntry, data: bytes | None) -> None:
    path = repo_root / entry.path
    if data is None:
        path.unlink(missing_ok=True)
        fsync_dir(path.parent)
        _remove_empty(repo_root, entry.prune_dirs)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = entry.new_mode if entry.new_mode is not None else (entry.before_mode or 0o644)
    atomic_replace(path, data, mode, repo_root / entry.tmp)


def run_transaction(
    repo_root: Path,
    op: Literal["apply", "undo"],
    run_id: str,
    targets: list[Target],
    record_file: str,
    record: dict | None,
    after_write: WriteHook | None = None,
    txid: str | None = None,
) -> Journal:
    """Write every target atomically (see the module docstring); on failure roll back and raise AetherError.

    The caller holds `transaction_lock`.
    """
    txid = txid or new_txid(op)
    try:
        backup, entries = _back_up(repo_root, txid, targets)
        journal = Journal(
            txid=txid, op=op, run_id=run_id, state="pending", backup_dir=backup, entries=entries,
            record_file=record_file, record=record,
        )  # fmt: skip
        journal_path = _save_journal(repo_root, journal)
    except OSError as exc:
        shutil.rmtree(backups_dir(repo_root) / txid, ignore_errors=True)
        raise AetherError(
            f"Could not prepare the {op} ({exc}); nothing was changed.",
            "Check free disk space and permissions of .aetherflow/, then try again.",
        ) from exc
    try:
        for number, (entry, target) in enumerate(zip(entries, targets, strict=True), start=1):
            _write_one(repo_root, entry, target.data)
            if after_write is not None:
                after_write(number, entry.path)
    except BaseException as exc:
        _fail(repo_root, journal, journal_path, exc)
    try:
        _complete(repo_root, journal, journal_path)
    except OSError as exc:
        # Every file is written; only the bookkeeping failed. The pending journal lets the next start finish it.
        raise AetherError(
            f"The {op} wrote every file but could not record it ({exc}).",
            "Free some disk space; the next aether command completes the record (so that undo works).",
        ) from exc
    return journal


def _fail(repo_root: Path, journal: Journal, journal_path: Path, exc: BaseException) -> None:
    """Roll back after a failed write and raise the error the user sees."""
    try:
        rollback(repo_root, journal)
    except OSError as rollback_exc:
        raise AetherError(
            f"The {journal.op} failed ({exc}) and rolling it back failed too ({rollback_exc}).",
            f"Nothing is lost: backups are in {journal.backup_dir}; fix the cause and run any aether command "
            "to finish the rollback.",
        ) from exc
    journal_path.unlink(missing_ok=True)
    if not isinstance(exc, Exception):
        raise exc  # KeyboardInterrupt and friends: rolled back, now let them through
    raise AetherError(
        f"The {journal.op} failed while writing ({exc}); every file already written was restored, so your "
        "files are as they were.",
        "Fix the cause (disk space, permissions, a read-only file), then try again.",
    ) from exc


def _remove_empty(repo_root: Path, folders: list[str]) -> None:
    """Remove `folders` (deepest first) while they are empty."""
    for folder in folders:
        try:
            (repo_root / folder).rmdir()
        except OSError:
            return  # not empty (or already gone): stop climbing


def _drop_temp(path: Path) -> None:
    """Remove a transaction's temp file if it is there. Only an existing file counts: on a read-only file system
    unlink fails with EROFS even for a missing name, and that must not stop a rollback that has nothing to undo."""
    try:
        path.unlink()
    except FileNotFoundError:
        return
    except OSError:
        if os.path.lexists(path):
            raise


def _restore(repo_root: Path, journal: Journal, entry: JournalEntry) -> None:
    """Put the backed-up bytes and mode of `entry` back in place.

    The backup is renamed into place rather than copied: a rename needs no free space, so the rollback after a
    'disk full' failure succeeds too (the backup is consumed; a rollback ends by deleting the backups anyway).
    Across file systems (a target on another mount) it falls back to a copy.
    """
    rel_backup = f"{journal.backup_dir}/{entry.path}"
    backup, path = repo_root / rel_backup, repo_root / entry.path
    if backup.is_symlink() or not inside_without_links(repo_root, rel_backup):
        raise OSError(errno.ELOOP, f"the backup {rel_backup} is below or is a symbolic link")
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = entry.before_mode if entry.before_mode is not None else 0o644
    try:
        os.chmod(backup, mode)
        os.replace(backup, path)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        atomic_replace(path, backup.read_bytes(), mode, repo_root / entry.tmp)
        return
    fsync_dir(path.parent)


def rollback(repo_root: Path, journal: Journal) -> list[str]:
    """Restore every entry to its backed-up state; return the paths that had to be changed back."""
    restored = []
    for entry in reversed(journal.entries):
        path = repo_root / entry.path
        _drop_temp(repo_root / entry.tmp)
        if file_sha256(path) != entry.before_sha:
            restored.append(entry.path)
            if entry.existed:
                _restore(repo_root, journal, entry)
            else:
                path.unlink(missing_ok=True)
        # Folders created for a new file go too, also when the crash came before the file itself was renamed.
        _remove_empty(repo_root, entry.created_dirs)
    shutil.rmtree(repo_root / journal.backup_dir, ignore_errors=True)
    return sorted(restored)


def _complete(repo_root: Path, journal: Journal, journal_path: Path) -> None:
    """Store (or retire) the run record, then mark the journal complete and drop it."""
    state = paths.state_dir(repo_root)
    record_path = state / journal.record_file
    record_path.parent.mkdir(parents=True, exist_ok=True)
    if journal.record is not None:
        data = json.dumps(journal.record, indent=1, sort_keys=True).encode()
        atomic_replace(record_path, data, 0o600, record_path.with_name(f".{record_path.name}.tmp"))
    elif record_path.exists():
        retired = state / "applied" / "undone" / record_path.name
        retired.parent.mkdir(parents=True, exist_ok=True)
        os.replace(record_path, retired)
    if journal.op == "undo":
        shutil.rmtree(repo_root / journal.backup_dir, ignore_errors=True)
    journal.state = "complete"
    _save_journal(repo_root, journal)
    journal_path.unlink(missing_ok=True)


def recover(repo_root: Path) -> list[str]:
    """Finish or roll back every pending journal; return one sentence per journal handled. Caller holds the lock."""
    folder = journal_dir(repo_root)
    if not folder.is_dir():
        return []
    messages = []
    for stray in folder.glob(".*.tmp"):
        stray.unlink(missing_ok=True)
    for path in sorted(folder.glob("*.json")):
        journal, problem = _load_journal(repo_root, path)
        if journal is None or problem is not None:
            messages.append(_set_aside(repo_root, path, problem or "it is damaged"))
            continue
        messages.append(_recover_one(repo_root, journal, path))
    return [m for m in messages if m]


def _load_journal(repo_root: Path, path: Path) -> tuple[Journal | None, str | None]:
    """The journal at `path` and why it must not be replayed (None when it may be)."""
    if path.is_symlink():
        return None, "it is a symbolic link"
    try:
        journal = Journal.model_validate_json(path.read_bytes())
    except ValidationError:
        return None, "it is damaged or not a journal"
    return journal, journal_problem(repo_root, journal, path.name)


def _set_aside(repo_root: Path, path: Path, problem: str) -> str:
    """Move a journal that must not be replayed to journal/rejected/, untouched, and say so."""
    rejected = journal_dir(repo_root) / "rejected"
    if rejected.is_symlink():
        rejected.unlink()  # planted too: a link out of .aetherflow must not receive the journal
    rejected.mkdir(exist_ok=True)
    os.replace(path, rejected / f"{time.time_ns()}-{path.name}")
    shown = rejected.relative_to(repo_root).as_posix()
    return (
        f"A journal AetherFlow did not write ({path.name}: {problem}) was set aside in {shown}/ and not "
        "replayed; none of your files was touched. Delete it if you do not know where it came from."
    )


def _recover_one(repo_root: Path, journal: Journal, path: Path) -> str:
    for entry in journal.entries:
        _drop_temp(repo_root / entry.tmp)
    if journal.state == "complete":
        path.unlink(missing_ok=True)
        return ""
    names = ", ".join(e.path for e in journal.entries)
    if all(file_sha256(repo_root / e.path) == e.after_sha for e in journal.entries):
        _complete(repo_root, journal, path)
        what = f"An interrupted {journal.op} of run {journal.run_id}"
        return f"{what} had written every file; it was completed ({names})."
    restored = rollback(repo_root, journal)
    path.unlink(missing_ok=True)
    shown = ", ".join(restored) or "none needed restoring"
    return f"An interrupted {journal.op} of run {journal.run_id} was rolled back; your files are as before ({shown})."


def prune_orphan_backups(repo_root: Path, keep: set[str]) -> None:
    """Delete backup folders no pending journal or applied record refers to (left by a crash before journalling)."""
    folder = backups_dir(repo_root)
    if not folder.is_dir():
        return
    for child in folder.iterdir():
        if backup_rel(child.name) not in keep:
            shutil.rmtree(child, ignore_errors=True)
