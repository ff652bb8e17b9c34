"""What the user sees, read without touching it: overlaying it on a worktree, hashing it, and diffing a worktree.

Reading uses git plumbing with optional locks off (so not even the index's stat cache is rewritten) and plain
file reads; files below a symlinked folder are never read, so a link out of the repository is not followed.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from aetherflow.paths import STATE_DIR_NAME
from aetherflow.workspace._fs import file_sha256, is_binary
from aetherflow.workspace._git import run_git, split_z
from aetherflow.workspace.changeset import ChangeSet, FileChange, FileStatus, build_file_change
from aetherflow.workspace.safety import is_protected

_SKIP_MODES = {"120000", "160000"}  # symlinks and submodules: never written by an agent, never applied


def _ours(rel: str) -> bool:
    return rel == STATE_DIR_NAME or rel.startswith(STATE_DIR_NAME + "/")


def _untracked(repo_root: Path) -> list[str]:
    names = split_z(run_git(repo_root, "ls-files", "--others", "--exclude-standard", "-z"))
    return [p for p in names if not p.endswith("/")]


def user_paths(repo_root: Path) -> list[str]:
    """Every path the user has: in HEAD, in the index, or untracked and not ignored."""
    indexed = split_z(run_git(repo_root, "ls-files", "-z"))
    in_head = split_z(run_git(repo_root, "ls-tree", "-r", "--name-only", "-z", "HEAD"))
    return sorted({p for p in indexed + in_head + _untracked(repo_root) if not _ours(p)})


def paths_differing_from_head(repo_root: Path) -> list[str]:
    """Paths whose working-tree state differs from HEAD (staged or not, deleted included), and untracked ones:
    what must be copied over a fresh checkout of HEAD for it to show what the user sees."""
    changed = split_z(run_git(repo_root, "diff", "HEAD", "--name-only", "--no-renames", "--no-ext-diff", "-z"))
    return sorted({p for p in changed + _untracked(repo_root) if not _ours(p)})


def inside_without_links(root: Path, rel: str) -> bool:
    """True when no folder on the way to `rel` is a symlink (the file itself may be one)."""
    root_real = os.path.realpath(root)
    parent = os.path.dirname(rel)
    expected = os.path.join(root_real, parent) if parent else root_real
    return os.path.realpath(os.path.join(root_real, parent)) == os.path.normpath(expected)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _copy_one(src: Path, dst: Path) -> str | None:
    """Copy a regular file (bytes and executable bit) or a symlink (as a link, never followed); return the
    sha256 of what was copied, in `file_sha256`'s terms."""
    st = src.lstat()
    if dst.exists() or dst.is_symlink():
        _remove(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISREG(st.st_mode):
        dst.write_bytes(src.read_bytes())
        os.chmod(dst, 0o755 if st.st_mode & stat.S_IXUSR else 0o644)
    return file_sha256(dst)


def overlay_user_changes(repo_root: Path, worktree: Path, paths: list[str]) -> dict[str, str | None]:
    """Make `worktree` (a checkout of HEAD) show exactly what the user's tree shows for `paths`; return the
    sha256 of each path as copied (None: absent), which is what the run's base holds for it."""
    copied: dict[str, str | None] = {}
    for rel in paths:
        src, dst = repo_root / rel, worktree / rel
        if not inside_without_links(worktree, rel):
            # A folder on the way is now a symlink in the worktree (the user replaced a tracked folder by a link,
            # copied just before, as sorting puts a folder before its files): nothing below it is the user's, and
            # touching `dst` would follow the link out of the repository.
            copied[rel] = None
            continue
        present = inside_without_links(repo_root, rel) and (src.is_symlink() or src.is_file())
        if present:
            copied[rel] = _copy_one(src, dst)
            continue
        if dst.is_symlink() or dst.is_file():
            dst.unlink()
        copied[rel] = None
    return copied


def take_user_snapshot(repo_root: Path, paths: list[str]) -> dict[str, str | None]:
    """sha256 of each user path now (None: absent, or below a symlinked folder)."""
    return {rel: file_sha256(repo_root / rel) if inside_without_links(repo_root, rel) else None for rel in paths}


def _raw_changes(worktree: Path, base: str) -> list[tuple[str, str, str, str, str]]:
    """(old mode, new mode, new blob, status letter, path) for each staged difference from `base`."""
    out = run_git(worktree, "diff", "--cached", "--raw", "--no-renames", "--no-abbrev", "-z", base)
    fields = out.split(b"\0")
    rows: list[tuple[str, str, str, str, str]] = []
    for i in range(0, len(fields) - 1, 2):
        meta = fields[i].decode().lstrip(":").split()
        if len(meta) < 5:
            continue
        path = fields[i + 1].decode("utf-8", "surrogateescape")
        rows.append((meta[0], meta[1], meta[3], meta[4][0], path))
    return rows


def _blob(worktree: Path, base: str, rel: str) -> bytes:
    # --filters gives the bytes as checked out (eol conversion, smudge filters), i.e. as the file is on disk.
    return run_git(worktree, "cat-file", "--filters", f"{base}:{rel}")


def _file_change(worktree: Path, base: str, row: tuple[str, str, str, str, str]) -> FileChange | None:
    old_mode, new_mode, new_blob, letter, rel = row
    status: FileStatus = "added" if letter == "A" else "deleted" if letter == "D" else "modified"
    if old_mode in _SKIP_MODES or new_mode in _SKIP_MODES:
        return None
    old = b"" if status == "added" else _blob(worktree, base, rel)
    new = None if status == "deleted" else (worktree / rel).read_bytes()
    if status == "modified" and old == new:
        return None  # a mode-only change: nothing to review or apply
    mode = None if status == "deleted" else new_mode
    if is_binary(old) or (new is not None and is_binary(new)):
        return build_file_change(rel, None, None, binary=True, status=status, new_blob=new_blob, new_mode=mode)
    old_text = None if status == "added" else old.decode("utf-8")
    new_text = None if new is None else new.decode("utf-8")
    return build_file_change(rel, old_text, new_text, new_mode=mode)


def collect_changes(
    worktree: Path, base: str, run_id: str, touched: set[str], include_protected: bool = False
) -> ChangeSet:
    """The worktree now versus `base`: every non-ignored change plus `touched` paths (written through the
    Workspace even if ignored). Stages into the worktree's own index, which belongs to AetherFlow."""
    run_git(worktree, "add", "-A")
    present = [p for p in sorted(touched) if (worktree / p).is_file()]
    for start in range(0, len(present), 200):
        run_git(worktree, "add", "-f", "--", *present[start : start + 200])
    files = []
    for row in _raw_changes(worktree, base):
        if not include_protected and is_protected(row[4]):
            continue
        change = _file_change(worktree, base, row)
        if change is not None:
            files.append(change)
    return ChangeSet(run_id=run_id, base_commit=base, files=files)
