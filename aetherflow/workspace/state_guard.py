"""Guards on what AetherFlow finds in a repository before it writes there: its own state folder, and the paths
that a journal or an undo record names.

Both are data on disk, and a cloned repository can carry them (committed with `git add -f`, or in an archive):
a journal or record is only acted on when it names what an apply itself would write.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from aetherflow import paths
from aetherflow.errors import AetherError, UnsafePathError
from aetherflow.workspace.safety import is_protected, safe_relpath
from aetherflow.workspace.snapshot import inside_without_links

if TYPE_CHECKING:
    from aetherflow.workspace.journal import Journal

_STATE_FOLDERS = ("journal", "backups", "applied")
_TXID = re.compile(r"^[0-9]{1,30}-(apply|undo)$")
_RECORD_FILE = re.compile(r"^applied/[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.json$")


def check_state_dir(repo_root: Path) -> None:
    """Refuse a .aetherflow/ that is, or directly holds, a symbolic link (or a journal/backups/applied entry that
    is not a folder): a cloned repository can carry such a link, and every write below it would land elsewhere."""
    state = paths.state_dir(repo_root)
    if not state.is_symlink() and not state.exists():
        return
    suspects = [state] if state.is_symlink() or not state.is_dir() else [
        child for child in state.iterdir()
        if child.is_symlink() or (child.name in _STATE_FOLDERS and not child.is_dir())
    ]  # fmt: skip
    if suspects:
        shown = ", ".join(str(s) for s in suspects)
        raise AetherError(
            f"AetherFlow will not write through {shown}: it is a symbolic link or not a folder (a cloned "
            "repository can carry one that points elsewhere).",
            f"Remove it (`rm {suspects[0]}`) if you did not make it, then run the command again.",
        )


def target_problem(repo_root: Path, rel: str) -> str | None:
    """Why an apply would never write `rel` (so a journal or record naming it was not written by one), or None.

    Refused: a path not in normalised repo-relative form, outside the repository (also through a symlinked
    folder), in .git/ or .aetherflow/, or protected (CI, hooks, AetherFlow's configuration).
    """
    try:
        normal = safe_relpath(repo_root, rel)
    except UnsafePathError as exc:
        return exc.message
    if normal != rel or rel == ".":
        return f"path '{rel}' is not a plain path inside the repository"
    parts = rel.lower().split("/")
    if ".git" in parts or parts[0] == paths.STATE_DIR_NAME or is_protected(rel):
        return f"path '{rel}' is protected (git's or AetherFlow's folders, CI, hooks or configuration)"
    if not inside_without_links(repo_root, rel):
        return f"path '{rel}' is below a symbolic link"
    return None


def backup_rel(txid: str) -> str:
    """The repo-relative folder holding a transaction's backups."""
    return f"{paths.STATE_DIR_NAME}/backups/{txid}"


def is_txid(text: str) -> bool:
    """True for a transaction id as `new_txid` makes them (digits, a dash, the operation)."""
    return _TXID.match(text) is not None


def temp_rel(rel: str, txid: str) -> str:
    """The temp file a transaction writes `rel` through: hidden, beside it, named after the transaction."""
    return (Path(rel).parent / f".{Path(rel).name}.aether-{txid}.tmp").as_posix()


def journal_problem(repo_root: Path, journal: Journal, file_name: str) -> str | None:
    """Why `journal` cannot have been written by `run_transaction`, so replaying it is refused; None if it fits."""
    if not is_txid(journal.txid) or not journal.txid.endswith(journal.op) or file_name != f"{journal.txid}.json":
        return "its name or transaction id is not one AetherFlow gives"
    if journal.backup_dir != backup_rel(journal.txid) or not _RECORD_FILE.match(journal.record_file):
        return "its backup folder or record file is not where AetherFlow keeps them"
    for entry in journal.entries:
        problem = target_problem(repo_root, entry.path)
        if problem is not None:
            return problem
        if entry.tmp != temp_rel(entry.path, journal.txid):
            return f"the temp file of '{entry.path}' is not beside it"
        above = {p.as_posix() for p in PurePosixPath(entry.path).parents} - {"."}
        if not set(entry.created_dirs) | set(entry.prune_dirs) <= above:
            return f"it names folders to remove that are not above '{entry.path}'"
    return None
