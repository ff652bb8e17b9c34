"""Path safety: every path a model names is normalised, checked against the root after resolving symlinks,
and compared with the list of files an agent may not write without a separate confirmation."""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

from aetherflow.errors import UnsafePathError

_DRIVE = re.compile(r"^[A-Za-z]:")
# Percent-decoding is repeated this many times at most, so '%252e%252e' (encoded twice) is seen as '..' too.
_MAX_DECODES = 3
_HINT = "Use a path relative to the repository root, such as 'src/app.py'."

# Folders nobody but the user (and git) writes: git internals, AetherFlow state, CI definitions, hook managers.
_PROTECTED_DIRS = (
    ".git/",
    ".aetherflow/",
    ".github/workflows/",
    ".github/actions/",
    ".circleci/",
    ".buildkite/",
    ".husky/",
    ".githooks/",
    ".hooks/",
)
# Files at the root that configure CI, hooks or AetherFlow itself.
_PROTECTED_ROOT_FILES = {
    "aetherflow.toml",
    ".pre-commit-config.yaml",
    ".pre-commit-hooks.yaml",
    ".travis.yml",
    "azure-pipelines.yml",
    "bitbucket-pipelines.yml",
    "jenkinsfile",
    "lefthook.yml",
    ".lefthook.yml",
    "lefthook.yaml",
    ".envrc",
}


def _refuse(user_path: str, why: str) -> UnsafePathError:
    shown = user_path.replace("\0", "\\0")
    return UnsafePathError(f"path '{shown}' {why}", _HINT)


def _normalise(user_path: str) -> str:
    """Lexical normalisation: POSIX separators, no '.', '..' folded; refuse forms that are absolute or escape."""
    if "\0" in user_path:
        raise _refuse(user_path, "contains a NUL byte")
    text = user_path.strip()
    if not text:
        raise _refuse(user_path, "is empty")
    # A backslash is a separator on Windows; treating it as one here means '..\\..\\x' cannot slip past.
    text = text.replace("\\", "/")
    if text.startswith("~"):
        raise _refuse(user_path, "points into a home folder, outside the repository")
    if _DRIVE.match(text) or text.startswith("/"):
        raise _refuse(user_path, "is absolute; it resolves outside the repository")
    parts: list[str] = []
    for part in text.split("/"):
        if _encoded_escape(part):
            raise _refuse(user_path, "is URL-encoded ('%2e%2e' is '..'); it could resolve outside the repository")
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise _refuse(user_path, "resolves outside the repository")
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts) if parts else "."


def _encoded_escape(part: str) -> bool:
    """True when a path component is a percent-encoded '.', '..' or separator ('%2e%2e', '..%2f', '%5c').

    The file system would take it literally, but any layer that decodes it (a URL, a tool that unquotes) would
    read an escape; a real file name never needs that form, so it is refused rather than guessed at.
    """
    decoded = part
    for _ in range(_MAX_DECODES):
        if "%" not in decoded:
            break
        decoded = unquote(decoded)
    if decoded == part:
        return False
    return decoded.strip() in (".", "..") or any(c in decoded for c in "/\\\0")


def safe_relpath(root: Path, user_path: str) -> str:
    """Normalise a model-given path to a repo-relative POSIX path, or raise UnsafePathError.

    Refused: absolute paths, `~`, `..` that escapes, Windows separators and drive letters that escape, NUL bytes,
    percent-encoded dots and separators (`%2e%2e/`), and any path whose symlinks (in any component) resolve
    outside `root`. The returned path is the lexical
    one ('.' for the root itself); callers that write also check the final component is not a symlink.
    """
    rel = _normalise(user_path)
    root_real = Path(os.path.realpath(root))
    target = Path(os.path.realpath(root_real / rel))
    if target != root_real and root_real not in target.parents:
        raise _refuse(user_path, "resolves outside the repository (through a symbolic link)")
    return rel


def real_relpath(root: Path, rel: str) -> str:
    """The repo-relative path that `rel` designates after resolving symlinks (already known to be inside)."""
    root_real = Path(os.path.realpath(root))
    target = Path(os.path.realpath(root_real / rel))
    return target.relative_to(root_real).as_posix() if target != root_real else "."


def is_protected(rel: str) -> bool:
    """True for paths an agent may not write without a separate, explicit confirmation.

    `.git/` (at any depth, so submodules too), `.aetherflow/`, CI workflow and hook-manager folders, root files
    that configure CI, hooks or AetherFlow, and every `.git*` file (`.gitignore`, `.gitattributes` filters,
    `.gitmodules` URLs, `.gitlab-ci.yml`). Compared case-insensitively: on case-insensitive file systems
    `.GIT/config` is `.git/config`.
    """
    path = PurePosixPath(rel.replace("\\", "/").lower())
    parts = [p for p in path.parts if p not in ("", ".")]
    if not parts:
        return False
    joined = "/".join(parts) + "/"
    if any(joined.startswith(prefix) for prefix in _PROTECTED_DIRS):
        return True
    if any(part == ".git" for part in parts[:-1]):
        return True
    if parts[-1].startswith(".git"):
        return True
    return len(parts) == 1 and parts[0] in _PROTECTED_ROOT_FILES
