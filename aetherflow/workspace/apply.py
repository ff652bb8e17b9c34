"""Applying the accepted part of a change set to the user's tree, undoing it, recovering from a crash.

Nothing here touches the git index; committing (`--commit`) is in commit.py.
"""

from __future__ import annotations

import re
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from aetherflow import paths
from aetherflow.errors import AetherError, ApplyConflictError, UnsafePathError, UsageError
from aetherflow.workspace import journal as jr
from aetherflow.workspace._fs import bytes_sha256, file_sha256
from aetherflow.workspace._git import run_git
from aetherflow.workspace.changeset import ChangeSet, FileChange, apply_hunks
from aetherflow.workspace.journal import Target, WriteHook
from aetherflow.workspace.safety import safe_relpath
from aetherflow.workspace.snapshot import inside_without_links
from aetherflow.workspace.state_guard import check_state_dir, is_txid, target_problem

_SHA = re.compile(r"^[0-9a-f]{40,64}$")

Selection = dict[str, set[int] | Literal["all"]]
"""Accepted hunks per path ("all" for the whole file); a path that is absent is rejected."""


class AppliedRecord(BaseModel):
    """What an apply changed, so that `aether undo` can put every byte back."""

    run_id: str
    applied_at: datetime
    files: list[str]
    before: dict[str, str | None]
    after: dict[str, str | None]
    backup_dir: str
    modes: dict[str, int | None] = Field(default_factory=dict)
    created_dirs: dict[str, list[str]] = Field(default_factory=dict)  # folders the apply created, per file
    txid: str = ""
    head: str | None = None  # HEAD when applied: commits after it that touch `files` mean the change was committed


def _applied_dir(repo_root: Path) -> Path:
    return paths.state_dir(repo_root) / "applied"


def _is_whole(change: FileChange, accepted: set[int] | Literal["all"]) -> bool:
    """True when the selection takes the whole change (every hunk; any mention for a change with no hunks)."""
    if accepted == "all":
        return True
    every = {h.index for h in change.hunks}
    return accepted >= every if every else bool(accepted)


def _new_content(repo_root: Path, change: FileChange, accepted: set[int] | Literal["all"]) -> bytes | None | bool:
    """The bytes `change` leaves under `accepted`: None deletes, False means 'leave the file alone'."""
    whole = _is_whole(change, accepted)
    if change.status == "deleted" or change.binary:
        if not whole:
            return False
        if change.status == "deleted":
            return None
        if change.new_blob is None:
            return _missing_blob(change)
        # --filters: the bytes as git would check them out (an LFS file's content, not its pointer).
        return run_git(repo_root, "cat-file", "--filters", f"--path={change.path}", change.new_blob)
    try:
        text = (change.new_text or "") if whole else apply_hunks(change.old_text or "", change, set(accepted))
    except ValueError as exc:
        raise UsageError(f"The selection does not fit the change set: {exc}.", "Review the change set again.") from exc
    if change.status == "modified" and text == change.old_text:
        return False
    return text.encode("utf-8")


def _missing_blob(change: FileChange) -> bytes:
    raise AetherError(
        f"The new content of binary file {change.path} is not recorded.",
        "Run the request again to rebuild the change set.",
    )


def _check_target(repo_root: Path, rel: str) -> str | None:
    """Why `rel` cannot be written safely, or None."""
    try:
        safe_relpath(repo_root, rel)
    except UnsafePathError as exc:
        return exc.message
    parts = rel.split("/")
    if ".git" in parts or parts[0] == paths.STATE_DIR_NAME:
        return f"{rel} is inside git's or AetherFlow's own folder"
    path = repo_root / rel
    if not inside_without_links(repo_root, rel) or path.is_symlink():
        return f"{rel} is (or is below) a symbolic link"
    blocking = next((p for p in Path(rel).parents if (repo_root / p).is_file()), None)
    if blocking is not None:
        return f"{rel} needs the folder {blocking.as_posix()}, which is a file in your tree"
    if path.is_dir():
        return f"{rel} is a folder in your tree"
    if path.is_file() and not path.stat().st_mode & stat.S_IWUSR:
        return f"{rel} is read-only"
    return None


def _targets(repo_root: Path, changeset: ChangeSet, selection: Selection) -> list[Target]:
    unknown = sorted(set(selection) - set(changeset.paths()))
    if unknown:
        raise UsageError(f"The selection names files the change set does not have: {', '.join(unknown)}.")
    targets = []
    for change in changeset.files:
        if change.path not in selection:
            continue
        data = _new_content(repo_root, change, selection[change.path])
        if data is False:
            continue
        mode = None if change.status == "modified" else 0o755 if change.new_mode == "100755" else 0o644
        targets.append(Target(path=change.path, data=data, mode=mode))  # type: ignore[arg-type]
    return targets


def _refuse_blocked(repo_root: Path, targets: list[Target]) -> None:
    problems = [p for p in (_check_target(repo_root, t.path) for t in targets) if p]
    if problems:
        raise AetherError(
            "Nothing was applied: " + "; ".join(problems) + ".",
            "Fix these files (for a read-only one: `chmod u+w FILE`) or reject them, then apply again.",
        )


def _conflicts(repo_root: Path, expected: dict[str, str | None], names: list[str]) -> list[str]:
    return [rel for rel in names if file_sha256(repo_root / rel) != expected.get(rel)]


def _base_mismatches(repo_root: Path, changeset: ChangeSet, names: list[str]) -> list[str]:
    """Files whose bytes on disk are not the text the run started from (line-ending or filter conversions):
    patching them would rewrite more than the change, so they are refused too."""
    mismatched = []
    for rel in names:
        change = changeset.get(rel)
        if change is None or change.binary or change.old_text is None:
            continue
        if file_sha256(repo_root / rel) != bytes_sha256(change.old_text.encode("utf-8")):
            mismatched.append(rel)
    return mismatched


def _refuse_conflicts(repo_root: Path, changeset: ChangeSet, snapshot: dict[str, str | None], names: list[str]) -> None:
    changed = _conflicts(repo_root, snapshot, names)
    if changed:
        raise ApplyConflictError(
            "Nothing was applied: you changed these files after the run began: " + ", ".join(changed) + ".",
            "Your changes are kept. Re-run the request on the current files, or review the run again with "
            f"`aether runs apply {changeset.run_id}` and reject those files.",
        )
    differing = _base_mismatches(repo_root, changeset, names)
    if differing:
        raise ApplyConflictError(
            "Nothing was applied: these files differ from the copy the run worked on (line endings or a git "
            "filter converted them): " + ", ".join(differing) + ".",
            "Reject those files, or apply the shown diff yourself (`aether runs show ID`).",
        )


def apply_changes(
    repo_root: Path,
    changeset: ChangeSet,
    selection: Selection,
    user_snapshot: dict[str, str | None],
    *,
    after_write: WriteHook | None = None,
) -> AppliedRecord:
    """Apply the selected files and hunks atomically, or refuse naming every file the user changed since the run
    began (ApplyConflictError: nothing is written). `after_write` is a test seam (see journal.WriteHook)."""
    repo_root = repo_root.resolve()
    recover_pending(repo_root)
    targets = _targets(repo_root, changeset, selection)
    if not targets:
        raise UsageError("Nothing was selected to apply.", "Accept at least one file or hunk.")
    with jr.transaction_lock(repo_root):
        _refuse_conflicts(repo_root, changeset, user_snapshot, [t.path for t in targets])
        _refuse_blocked(repo_root, targets)
        return _apply_locked(repo_root, changeset.run_id, targets, after_write)


def _apply_locked(repo_root: Path, run_id: str, targets: list[Target], hook: WriteHook | None) -> AppliedRecord:
    now = datetime.now(UTC)
    record_file = f"applied/{now.strftime('%Y%m%dT%H%M%S%fZ')}-{run_id}.json"
    before = {t.path: file_sha256(repo_root / t.path) for t in targets}
    modes = {t.path: (repo_root / t.path).stat().st_mode & 0o7777 if before[t.path] else None for t in targets}
    txid = jr.new_txid("apply")
    record = AppliedRecord(
        run_id=run_id, applied_at=now, files=[t.path for t in targets], before=before,
        after={t.path: bytes_sha256(t.data) for t in targets}, backup_dir=jr.backup_rel(txid), modes=modes,
        created_dirs={t.path: jr.missing_dirs(repo_root, t.path) for t in targets if t.data is not None},
        txid=txid, head=_head(repo_root),
    )  # fmt: skip
    # The journal carries the record so that recovery after a crash can complete the apply with it.
    jr.run_transaction(repo_root, "apply", run_id, targets, record_file, record.model_dump(mode="json"), hook, txid)
    return record


def _head(repo_root: Path) -> str | None:
    out = run_git(repo_root, "rev-parse", "-q", "--verify", "HEAD^{commit}", check=False).decode().strip()
    return out or None


def recover_pending(repo_root: Path) -> str | None:
    """Roll back (or complete) an apply or undo interrupted by a crash; return what was done, or None.

    Call it at the start of every run, apply and undo. Temp files and orphaned backups are removed too.
    """
    repo_root = repo_root.resolve()
    check_state_dir(repo_root)
    if not paths.state_dir(repo_root).is_dir():
        return None
    with jr.transaction_lock(repo_root):
        try:
            messages = jr.recover(repo_root)
            keep = {r.backup_dir for r in _records(repo_root)}
            jr.prune_orphan_backups(repo_root, keep)
        except OSError as exc:
            # Still pending: the journal and its backups stay, so the next attempt picks up where this one stopped.
            raise AetherError(
                f"Could not finish an apply or undo that was interrupted earlier ({exc}).",
                "Free some disk space or fix the permissions named above, then run the command again; the "
                "backups in .aetherflow/backups/ are kept until it succeeds.",
            ) from exc
    return " ".join(messages) or None


def _load_record(path: Path) -> AppliedRecord:
    try:
        return AppliedRecord.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise AetherError(
            f"The undo record {path} is damaged ({exc.error_count()} errors), so its backups cannot be trusted.",
            "Move that file out of .aetherflow/applied/ (undo of that run will no longer be possible), then retry.",
        ) from exc


def _check_record(repo_root: Path, path: Path, record: AppliedRecord) -> None:
    """Refuse to undo from a record an apply did not write (a cloned repository can carry one): its files must be
    paths an apply writes, and its backups must be in AetherFlow's backup folder."""
    problems = [p for p in (target_problem(repo_root, rel) for rel in record.files) if p]
    if not is_txid(record.txid) or record.backup_dir != jr.backup_rel(record.txid):
        problems.append(f"its backups ({record.backup_dir}) are not in {paths.STATE_DIR_NAME}/backups/")
    if record.head is not None and not _SHA.match(record.head):
        problems.append(f"its commit ({record.head}) is not a commit id")
    if problems:
        raise AetherError(
            f"The undo record {path.name} was not written by an AetherFlow apply: " + "; ".join(problems) + ". "
            "Nothing was changed.",
            f"Delete {path} if you do not know where it came from (a cloned repository can carry one).",
        )


def _records(repo_root: Path) -> list[AppliedRecord]:
    folder = _applied_dir(repo_root)
    if not folder.is_dir():
        return []
    return [_load_record(p) for p in sorted(folder.glob("*.json"))]


def _last_record(repo_root: Path) -> tuple[Path, AppliedRecord]:
    folder = _applied_dir(repo_root)
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        raise UsageError(
            "Nothing to undo: no applied run is recorded in this repository.",
            "`aether runs` lists past runs; only changes applied by AetherFlow can be undone.",
        )
    return files[-1], _load_record(files[-1])


def _undo_targets(repo_root: Path, record: AppliedRecord) -> list[Target]:
    targets = []
    for rel in record.files:
        if record.before.get(rel) is None:
            targets.append(Target(path=rel, data=None, prune_dirs=record.created_dirs.get(rel, [])))
            continue
        backup = repo_root / record.backup_dir / rel
        data = backup.read_bytes() if backup.is_file() else None
        if data is None or bytes_sha256(data) != record.before[rel]:
            raise AetherError(
                f"The backup of {rel} from run {record.run_id} is missing or damaged ({backup}).",
                "Undo cannot restore it exactly; restore the file from git (`git checkout -- FILE`) if needed.",
            )
        targets.append(Target(path=rel, data=data, mode=record.modes.get(rel) or 0o644))
    return targets


def undo_last(repo_root: Path) -> AppliedRecord:
    """Restore the files of the last applied run byte for byte (removing files it added, restoring deleted ones).

    Refuses, naming them, when any of those files changed since the apply; refuses when there is nothing to undo.
    """
    repo_root = repo_root.resolve()
    recover_pending(repo_root)
    with jr.transaction_lock(repo_root):
        record_path, record = _last_record(repo_root)
        _check_record(repo_root, record_path, record)
        changed = _conflicts(repo_root, record.after, record.files)
        if changed:
            raise ApplyConflictError(
                f"Cannot undo run {record.run_id}: these files changed since it was applied: {', '.join(changed)}. "
                "Undo would overwrite those edits, so nothing was changed.",
                f"Take the run's change back by hand instead: `aether runs show {record.run_id}` shows its diff "
                "(or put those files back as the run left them, then run `aether undo` again).",
            )
        targets = _undo_targets(repo_root, record)
        _refuse_blocked(repo_root, [t for t in targets if t.data is not None])
        record_file = record_path.relative_to(paths.state_dir(repo_root)).as_posix()
        jr.run_transaction(repo_root, "undo", record.run_id, targets, record_file, None, None)
    return record


def commits_since_apply(repo_root: Path, record: AppliedRecord) -> list[str]:
    """Short ids of the commits made after the apply that touch its files (its change was committed, whole or in
    part), newest first; empty when HEAD has not moved or its commit at apply time is unknown."""
    repo_root = repo_root.resolve()
    head = _head(repo_root)
    if record.head is None or not _SHA.match(record.head) or head is None or head == record.head:
        return []
    out = run_git(repo_root, "log", "--format=%h", f"{record.head}..HEAD", "--", *record.files, check=False)
    return out.decode().split()


def remote_branches_with(repo_root: Path, commit: str) -> list[str]:
    """The remote-tracking branches that contain `commit` (it was pushed there)."""
    out = run_git(repo_root.resolve(), "branch", "-r", "--format=%(refname:short)", "--contains", commit, check=False)
    return out.decode().split()
