"""The run's isolated workspace: a git worktree under .aetherflow/worktrees/<run_id>, based on what the user saw.

Agents read and write only here, through methods that check every path (safety.py) and serialise writes to the
same file, so two parallel subtasks editing one file both land. The user's tree, index and untracked files are
only ever read (see snapshot.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from aetherflow import paths
from aetherflow.errors import NotARepositoryError, UnsafePathError, UsageError
from aetherflow.workspace import snapshot as snap
from aetherflow.workspace._fs import is_binary
from aetherflow.workspace._git import BOT_CONFIG, git_ok, run_git
from aetherflow.workspace.changeset import ChangeSet
from aetherflow.workspace.edits import EditError, search_replace
from aetherflow.workspace.safety import is_protected, real_relpath, safe_relpath

EditAction = Literal["edited", "created", "overwritten", "deleted"]
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_BASE_MESSAGE = "AetherFlow base: the files as the user saw them when the run began"
MAX_READ_BYTES = 2_000_000
_MATCH_NOTES = {
    "trailing_whitespace": " (trailing whitespace differed from the search text; tolerated)",
    "indentation": " (indentation differed from the search text; the replacement was re-indented)",
}


class EditOutcome(BaseModel):
    """What a write did, with a one-line `message` suitable to hand back to the model."""

    path: str
    action: EditAction
    match: str | None = None  # how the search text matched (edits only)
    line: int | None = None  # first line of the edited region (edits only)
    added: int = 0
    removed: int = 0
    message: str


def _line_delta(old: str, new: str) -> tuple[int, int]:
    """(lines added, lines removed), cheaply: what differs once the common head and tail are set aside."""
    a, b = old.splitlines(), new.splitlines()
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    return len(b) - head - tail, len(a) - head - tail


class Workspace:
    """One run's worktree. Create it with `Workspace.create`, reopen it with `Workspace.open`."""

    def __init__(
        self, run_id: str, repo_root: Path, root: Path, base_commit: str, user_snapshot: dict[str, str | None]
    ) -> None:
        self.run_id = run_id
        self.repo_root = repo_root
        self.root = root
        self.base_commit = base_commit
        self.user_snapshot = user_snapshot
        self._locks: dict[str, asyncio.Lock] = {}
        self._touched: set[str] = set()
        # Protected paths an agent tried to write (refused): reported with the change set as held back.
        self.refused_protected: set[str] = set()

    # ----- creation -------------------------------------------------------------------------------------------

    @staticmethod
    def _paths_for(repo_root: Path, run_id: str) -> tuple[Path, Path]:
        if not _RUN_ID.match(run_id):
            raise UsageError(f"run id {run_id!r} is not valid", "Use letters, digits, '.', '_' and '-' only.")
        state = paths.state_dir(repo_root)
        return state / "worktrees" / run_id, state / "runs" / run_id / "snapshot.json"

    @classmethod
    def create(cls, repo_root: Path, run_id: str) -> Workspace:
        """A detached worktree at HEAD overlaid with the user's staged, unstaged and untracked changes, committed
        as the run's base; the user's file hashes are saved for the 'changed since the run began' check."""
        repo_root = repo_root.resolve()
        if not git_ok(repo_root, "rev-parse", "--is-inside-work-tree"):
            raise NotARepositoryError(
                f"{repo_root} is not inside a git repository.",
                "cd into your project (or run `git init` first), then run the command again.",
            )
        if not git_ok(repo_root, "rev-parse", "--verify", "-q", "HEAD^{commit}"):
            raise UsageError(
                "This repository has no commit yet, so there is no base to work from.",
                "Make a first commit (`git add -A && git commit -m 'initial'`), then run again.",
            )
        root, record = cls._paths_for(repo_root, run_id)
        if root.exists():
            raise UsageError(
                f"A worktree for run {run_id} already exists at {root}.",
                f"Resume it with `aether run --resume {run_id}`, or choose another run id.",
            )
        paths.ensure_state_dir(repo_root)
        root.parent.mkdir(parents=True, exist_ok=True)
        # Hash first, list changes second, then record what was copied: a file the user edits in between is
        # either copied (and hashed as copied) or caught later as 'changed since the run began'. Never missed.
        user_snapshot = snap.take_user_snapshot(repo_root, snap.user_paths(repo_root))
        overlay = snap.paths_differing_from_head(repo_root)
        run_git(repo_root, *BOT_CONFIG, "worktree", "add", "--detach", "--quiet", str(root), "HEAD")
        try:
            user_snapshot.update(snap.overlay_user_changes(repo_root, root, overlay))
            base = cls._commit_base(root)
        except BaseException:
            run_git(repo_root, "worktree", "remove", "--force", str(root), check=False)
            raise
        record.parent.mkdir(parents=True, exist_ok=True)
        data = {"run_id": run_id, "base_commit": base, "worktree": str(root), "snapshot": user_snapshot}
        record.write_text(json.dumps(data, indent=1, sort_keys=True))
        return cls(run_id, repo_root, root, base, user_snapshot)

    @staticmethod
    def _commit_base(root: Path) -> str:
        run_git(root, "add", "-A")
        run_git(root, *BOT_CONFIG, "commit", "--quiet", "--no-verify", "--allow-empty", "-m", _BASE_MESSAGE)
        return run_git(root, "rev-parse", "HEAD").decode().strip()

    @classmethod
    def open(cls, repo_root: Path, run_id: str) -> Workspace:
        """Reopen an existing run's worktree (for `aether run --resume`)."""
        repo_root = repo_root.resolve()
        root, record = cls._paths_for(repo_root, run_id)
        if not record.is_file() or not root.is_dir():
            raise UsageError(
                f"Run {run_id} has no workspace to resume (looked for {root}).",
                "List runs with `aether runs`; a run whose workspace was removed must be started again.",
            )
        data = json.loads(record.read_text())
        return cls(run_id, repo_root, root, data["base_commit"], data["snapshot"])

    # ----- reading --------------------------------------------------------------------------------------------

    def _resolve(self, user_path: str) -> tuple[str, Path]:
        """(real repo-relative path, absolute path) for a model-given path; refuses escapes and git internals."""
        real = real_relpath(self.root, safe_relpath(self.root, user_path))
        if real == ".git" or real.startswith(".git/"):
            raise UnsafePathError(f"path '{user_path}' is inside .git/, which agents never access", None)
        return real, self.root / real

    def read_text(self, rel: str, start_line: int | None = None, end_line: int | None = None) -> str:
        """The file's text, or lines `start_line`..`end_line` (1-based, inclusive)."""
        real, path = self._resolve(rel)
        if not path.is_file():
            raise EditError(f"There is no file '{rel}'." + (" It is a folder: use list_dir." if path.is_dir() else ""))
        whole = start_line is None and end_line is None
        if whole and path.stat().st_size > MAX_READ_BYTES:
            raise EditError(f"'{rel}' is larger than {MAX_READ_BYTES} bytes; read a line range instead.")
        with path.open("rb") as fh:
            head = fh.read(8192)
        if b"\0" in head:
            raise EditError(f"'{rel}' is a binary file; it cannot be read as text.")
        if whole:
            return path.read_bytes().decode("utf-8", "replace")
        return self._read_range(path, rel, max(1, start_line or 1), end_line)

    @staticmethod
    def _read_range(path: Path, rel: str, first: int, last: int | None) -> str:
        """Lines `first`..`last` (1-based, inclusive), streamed so a huge file is never loaded whole."""
        picked: list[str] = []
        count = 0
        with path.open("rb") as fh:
            for count, raw in enumerate(fh, start=1):
                if last is not None and count > last:
                    break
                if count >= first:
                    picked.append(raw.decode("utf-8", "replace"))
        if not picked and count and first > count:
            raise EditError(f"'{rel}' has {count} lines; line {first} does not exist.")
        return "".join(picked)

    def list_dir(self, rel: str = ".") -> list[str]:
        """Sorted entries of a folder, folders with a trailing '/'; `.git` is never listed."""
        real, path = self._resolve(rel)
        if not path.is_dir():
            raise EditError(f"There is no folder '{rel}'.")
        entries = []
        for child in sorted(path.iterdir(), key=lambda p: p.name):
            if child.name == ".git":
                continue
            entries.append(child.name + "/" if child.is_dir() and not child.is_symlink() else child.name)
        return entries

    def exists(self, rel: str) -> bool:
        """True when the path names an existing file or folder inside the worktree (unsafe paths raise)."""
        return self._resolve(rel)[1].exists()

    # ----- writing --------------------------------------------------------------------------------------------

    def _writable(self, user_path: str, allow_protected: bool) -> tuple[str, Path]:
        lexical = safe_relpath(self.root, user_path)
        if not allow_protected and is_protected(lexical):
            raise self._protected(user_path, lexical)
        real, path = self._resolve(user_path)
        if (self.root / lexical).is_symlink():
            raise EditError(f"'{user_path}' is a symbolic link; edit the file it points to instead.")
        if not allow_protected and is_protected(real):
            raise self._protected(user_path, real)
        if real == ".":
            raise EditError(f"'{user_path}' is the repository root, not a file.")
        return real, path

    def _protected(self, user_path: str, rel: str) -> UnsafePathError:
        # Checked before `_resolve` so that a write into .git/ is recorded (and shown to the user) like the others.
        self.refused_protected.add(rel)
        return UnsafePathError(
            f"path '{user_path}' is protected (git, CI, hook or AetherFlow configuration)",
            "Agents may not change it; the user can change it themselves if needed.",
        )

    def _lock(self, real: str) -> asyncio.Lock:
        lock = self._locks.get(real)
        if lock is None:
            lock = self._locks[real] = asyncio.Lock()
        return lock

    async def edit(self, rel: str, search: str, replace: str, *, allow_protected: bool = False) -> EditOutcome:
        """Replace `search` by `replace` in the file's current content (EditError with guidance if not found)."""
        real, path = self._writable(rel, allow_protected)
        async with self._lock(real):
            return await asyncio.to_thread(self._edit_sync, real, path, rel, search, replace)

    def _edit_sync(self, real: str, path: Path, rel: str, search: str, replace: str) -> EditOutcome:
        if not path.is_file():
            if search.strip():
                raise EditError(f"There is no file '{rel}'. To create it, use create_file (or an empty search).")
            return self._write_sync(real, path, replace, False)
        old = self._read_for_edit(path, rel)
        result = search_replace(old, search, replace, path=rel)
        self._store(real, path, result.text, path.stat().st_mode & 0o777)
        added, removed = _line_delta(old, result.text)
        how = _MATCH_NOTES.get(result.match, "")
        message = f"Edited {real} at line {result.line}: +{added} -{removed} lines{how}."
        return EditOutcome(
            path=real, action="edited", match=result.match, line=result.line, added=added, removed=removed,
            message=message,
        )  # fmt: skip

    @staticmethod
    def _read_for_edit(path: Path, rel: str) -> str:
        data = path.read_bytes()
        if is_binary(data):
            raise EditError(f"'{rel}' is a binary file; it cannot be edited as text.")
        return data.decode("utf-8")

    async def write_file(
        self, rel: str, content: str, *, create_only: bool = False, allow_protected: bool = False
    ) -> EditOutcome:
        """Write the whole file (creating folders); with `create_only`, refuse if it already exists."""
        real, path = self._writable(rel, allow_protected)
        async with self._lock(real):
            return await asyncio.to_thread(self._write_sync, real, path, content, create_only)

    def _write_sync(self, real: str, path: Path, content: str, create_only: bool) -> EditOutcome:
        if path.is_dir():
            raise EditError(f"'{real}' is a folder, not a file.")
        existed = path.is_file()
        if existed and create_only:
            raise EditError(f"'{real}' already exists; use edit_file to change it.")
        old = self._read_for_edit(path, real) if existed else ""
        if existed and "\r\n" in old and old.count("\r\n") == old.count("\n"):
            content = content.replace("\r\n", "\n").replace("\n", "\r\n")  # keep the file's CRLF endings
        mode = path.stat().st_mode & 0o777 if existed else 0o644
        self._store(real, path, content, mode)
        added, removed = _line_delta(old, content)
        action: EditAction = "overwritten" if existed else "created"
        message = f"{action.capitalize()} {real}: +{added} -{removed} lines."
        return EditOutcome(path=real, action=action, added=added, removed=removed, message=message)

    def _store(self, real: str, path: Path, text: str, mode: int) -> None:
        self._make_parents(real, path)
        tmp = path.with_name(f".{path.name}.aether-tmp")
        tmp.write_bytes(text.encode("utf-8"))
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        self._touched.add(real)

    def _make_parents(self, real: str, path: Path) -> None:
        parent = path.parent
        for folder in [*reversed(parent.relative_to(self.root).parents), parent.relative_to(self.root)]:
            candidate = self.root / folder
            if candidate.is_file() or candidate.is_symlink() and not candidate.is_dir():
                raise EditError(f"Cannot create '{real}': '{folder.as_posix()}' is a file, not a folder.")
        parent.mkdir(parents=True, exist_ok=True)

    async def delete_file(self, rel: str, *, allow_protected: bool = False) -> EditOutcome:
        """Delete a file (never a folder)."""
        real, path = self._writable(rel, allow_protected)
        async with self._lock(real):
            if path.is_dir():
                raise EditError(f"'{rel}' is a folder; only files can be deleted.")
            if not path.is_file():
                raise EditError(f"There is no file '{rel}' to delete.")
            old = self._read_for_edit(path, rel) if path.stat().st_size <= MAX_READ_BYTES else ""
            path.unlink()
            self._touched.add(real)
            removed = len(old.splitlines())
            return EditOutcome(path=real, action="deleted", removed=removed, message=f"Deleted {real}.")

    # ----- results and clean-up -------------------------------------------------------------------------------

    def changeset(self, *, include_protected: bool = False) -> ChangeSet:
        """The worktree now versus the base commit; binary files are flagged, not diffed. Protected paths that a
        check command may have touched are left out unless `include_protected`, and named in `held_back` with
        the protected paths agents were refused, so the review can tell the user they were not applied."""
        every = snap.collect_changes(self.root, self.base_commit, self.run_id, self._touched, include_protected=True)
        if include_protected:
            return every
        kept = [change for change in every.files if not is_protected(change.path)]
        held = {change.path for change in every.files if is_protected(change.path)} | self.refused_protected
        return every.model_copy(update={"files": kept, "held_back": sorted(held)})

    def remove(self) -> None:
        """Remove the worktree (`git worktree remove --force`, then prune); calling it twice is fine."""
        if self.root.exists():
            run_git(self.repo_root, "worktree", "remove", "--force", str(self.root), check=False)
        if self.root.exists() and paths.is_within(self.root, paths.state_dir(self.repo_root)):
            shutil.rmtree(self.root)
        run_git(self.repo_root, "worktree", "prune", check=False)
