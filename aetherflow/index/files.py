"""Which files the index reads, and why every other one is skipped.

The list starts from git, so `.gitignore` is honoured by construction: the committed tree of HEAD by default,
or with `worktree=True` the tracked and untracked-but-not-ignored files as they are on disk. Then, in order:
- path rules: `.aetherignore` and `index.ignore` (gitignore syntax), vendored folders, generated names and
  lock files, submodules, symlinks (a symlink is never followed, nor a symlinked folder on a file's way: its
  target is indexed under its own path when it is a tracked file, and a target outside the repository or a
  loop is reported as such), size limit;
- content rules, applied when a file is read: binary, invalid UTF-8, a "generated" header, unreadable.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from aetherflow import paths
from aetherflow.index import gitrepo

SkipReason = Literal[
    "ignored",
    "vendored",
    "generated",
    "too_large",
    "binary",
    "invalid_utf8",
    "unreadable",
    "symlink",
    "symlink_outside",
    "symlink_loop",
    "submodule",
]

AETHERIGNORE = ".aetherignore"

_VENDORED = ["node_modules/", "vendor/", "bower_components/", "third_party/", "site-packages/", ".venv/"]
_GENERATED = [
    "dist/",
    "*.min.js",
    "*.min.css",
    "*.js.map",
    "*.css.map",
    "*_pb2.py",
    "*_pb2_grpc.py",
    "*.pb.go",
]
_LOCK_FILES = [
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "poetry.lock",
    "Pipfile.lock",
    "uv.lock",
    "pdm.lock",
    "Cargo.lock",
    "Gemfile.lock",
    "composer.lock",
    "go.sum",
    "flake.lock",
]
_GENERATED_HEADER = re.compile(
    r"@generated\b|\bdo not edit\b|\bauto-?generated\b|\bcode generated\b|"
    r"\bthis file (?:is|was|has been) (?:automatically )?generated\b",
    re.IGNORECASE,
)
_HEADER_LINES = 5
_BINARY_PROBE = 8000


class SkippedFile(BaseModel):
    """A file the index leaves out, with the reason (and a detail for people)."""

    path: str
    reason: SkipReason
    detail: str = ""


class Candidate(BaseModel):
    """A file that passed the path rules; its content rules are checked when it is read."""

    path: str
    blob_sha: str
    size: int


@dataclass
class Listing:
    """The outcome of the path rules."""

    candidates: list[Candidate] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)


class PathRules:
    """The gitignore-style rules that exclude files by path alone."""

    def __init__(self, repo_root: Path, extra_ignore: list[str]) -> None:
        from pathspec import GitIgnoreSpec

        user_lines = list(extra_ignore)
        ignore_file = repo_root / AETHERIGNORE
        # A `.aetherignore` linked out of the repository is not the repository's to read.
        if ignore_file.is_file() and paths.is_within(ignore_file, repo_root):
            user_lines += ignore_file.read_text(encoding="utf-8", errors="replace").splitlines()
        self._rules = [
            ("ignored", "AetherFlow's own state", GitIgnoreSpec.from_lines([f"/{paths.STATE_DIR_NAME}/"])),
            ("ignored", "matches .aetherignore or index.ignore", GitIgnoreSpec.from_lines(user_lines)),
            ("vendored", "vendored dependency folder", GitIgnoreSpec.from_lines(_VENDORED)),
            ("generated", "generated or build output", GitIgnoreSpec.from_lines(_GENERATED)),
            ("generated", "lock file", GitIgnoreSpec.from_lines(_LOCK_FILES)),
        ]

    def skip_reason(self, path: str) -> SkippedFile | None:
        """The rule that excludes `path`, or None when it stays."""
        for reason, detail, spec in self._rules:
            if spec.match_file(path):
                return SkippedFile(path=path, reason=reason, detail=detail)  # type: ignore[arg-type]
        return None


def list_committed(repo_root: Path, commit: str, rules: PathRules, max_bytes: int) -> Listing:
    """Apply the path rules to the files of `commit`."""
    listing = Listing()
    for entry in gitrepo.list_tree(repo_root, commit):
        skip = rules.skip_reason(entry.path)
        if skip is None and entry.mode == gitrepo.MODE_SUBMODULE:
            skip = SkippedFile(path=entry.path, reason="submodule", detail="a git submodule (index it on its own)")
        if skip is None and entry.mode == gitrepo.MODE_SYMLINK:
            skip = classify_symlink(repo_root, entry.path)
        if skip is None and entry.size is not None and entry.size > max_bytes:
            skip = _too_large(entry.path, entry.size, max_bytes)
        if skip is not None:
            listing.skipped.append(skip)
        else:
            listing.candidates.append(Candidate(path=entry.path, blob_sha=entry.sha, size=entry.size or 0))
    return listing


def list_worktree(repo_root: Path, rules: PathRules, max_bytes: int) -> Listing:
    """Apply the path rules to the work tree (tracked and untracked, not ignored), hashing each file's content."""
    listing = Listing()
    paths, modes = gitrepo.list_worktree_paths(repo_root)
    for path in paths:
        outcome = _worktree_entry(repo_root, path, modes.get(path), rules, max_bytes)
        if isinstance(outcome, SkippedFile):
            listing.skipped.append(outcome)
        elif outcome is not None:
            listing.candidates.append(outcome)
    return listing


def _worktree_entry(
    repo_root: Path, path: str, mode: str | None, rules: PathRules, max_bytes: int
) -> Candidate | SkippedFile | None:
    skip = rules.skip_reason(path)
    if skip is not None:
        return skip
    full = repo_root / path
    if mode == gitrepo.MODE_SUBMODULE or path.endswith("/"):
        return SkippedFile(path=path.rstrip("/"), reason="submodule", detail="a nested git repository")
    linked = below_symlink(repo_root, path)
    if linked is not None:
        return linked
    try:
        info = full.lstat()
    except FileNotFoundError:
        return None  # deleted in the work tree and not committed yet: nothing to index
    except OSError as exc:
        return SkippedFile(path=path, reason="unreadable", detail=exc.strerror or str(exc))
    if full.is_symlink():
        return classify_symlink(repo_root, path)
    if info.st_size > max_bytes:
        return _too_large(path, info.st_size, max_bytes)
    try:
        data = full.read_bytes()
    except OSError as exc:
        return SkippedFile(path=path, reason="unreadable", detail=exc.strerror or str(exc))
    return Candidate(path=path, blob_sha=gitrepo.blob_sha(data), size=len(data))


def _too_large(path: str, size: int, max_bytes: int) -> SkippedFile:
    return SkippedFile(
        path=path, reason="too_large", detail=f"{size:,} bytes > index.max_file_bytes ({max_bytes:,})"
    )


def classify_symlink(repo_root: Path, path: str) -> SkippedFile:
    """Say why a symlink is skipped: it loops, it leaves the repository, or its target is indexed directly."""
    full = repo_root / path
    try:
        resolved = Path(os.path.realpath(full, strict=True))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return SkippedFile(path=path, reason="symlink_loop", detail="the symlink points back to itself")
        return _lexical_symlink(repo_root, path)
    root = repo_root.resolve()
    if resolved != root and root not in resolved.parents:
        return SkippedFile(path=path, reason="symlink_outside", detail="resolves outside the repository")
    target = resolved.relative_to(root).as_posix()
    return SkippedFile(path=path, reason="symlink", detail=f"points to {target}, indexed under its own path")


def _lexical_symlink(repo_root: Path, path: str) -> SkippedFile:
    """A symlink missing from disk (only in the commit, or dangling): judge its target text."""
    full = repo_root / path
    try:
        target = os.readlink(full)
    except OSError:
        return SkippedFile(path=path, reason="symlink", detail="a symlink whose target does not exist")
    joined = os.path.normpath(os.path.join(os.path.dirname(path), target))
    if os.path.isabs(target) or joined == ".." or joined.startswith("../"):
        return SkippedFile(path=path, reason="symlink_outside", detail="resolves outside the repository")
    return SkippedFile(path=path, reason="symlink", detail=f"dangling symlink to {target}")


def decode_source(path: str, data: bytes) -> str | SkippedFile:
    """The file's text, or why it is skipped: binary, invalid UTF-8, or generated (by its header)."""
    if b"\0" in data[:_BINARY_PROBE]:
        return SkippedFile(path=path, reason="binary", detail="contains NUL bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return SkippedFile(path=path, reason="invalid_utf8", detail=f"invalid UTF-8 at byte {exc.start}")
    head = "\n".join(text.splitlines()[:_HEADER_LINES])
    if _GENERATED_HEADER.search(head):
        return SkippedFile(path=path, reason="generated", detail="has a 'generated' header")
    return text


def below_symlink(repo_root: Path, path: str) -> SkippedFile | None:
    """A skip for a path with a symlinked folder on the way, else None.

    Git still lists a tracked `docs/notes.md` after the user replaced `docs/` by a link (to their home folder,
    say); opening the path would follow that link, so such a file is never read.
    """
    parent = os.path.dirname(path)
    if not parent:
        return None
    root = os.path.realpath(repo_root)
    lexical = os.path.normpath(os.path.join(root, parent))
    if os.path.realpath(lexical) == lexical:
        return None
    resolved = Path(os.path.realpath(os.path.join(root, path)))
    if resolved != Path(root) and Path(root) not in resolved.parents:
        return SkippedFile(path=path, reason="symlink_outside", detail="below a symlinked folder leaving the repo")
    return SkippedFile(path=path, reason="symlink", detail="below a symlinked folder (links are never followed)")


def read_worktree_file(repo_root: Path, path: str) -> bytes | SkippedFile:
    """Read a work tree file, turning permission and I/O errors into a skip; never through a symlinked folder."""
    linked = below_symlink(repo_root, path)
    if linked is not None:
        return linked
    try:
        return (repo_root / path).read_bytes()
    except OSError as exc:
        return SkippedFile(path=path, reason="unreadable", detail=exc.strerror or str(exc))
