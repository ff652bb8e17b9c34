"""Helpers for the workspace tests: git in a temporary repository and a fingerprint of what the user owns."""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` and return stdout (fails the test on a non-zero exit)."""
    # Optional locks off: the test's own `git status` must not refresh the index it fingerprints.
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False, env=env)
    assert proc.returncode == 0, f"git {args} failed: {proc.stderr}"
    return proc.stdout


@dataclass(frozen=True)
class UserState:
    """Everything of the user's that a run must not touch: file bytes and modes, status, staged diff, index."""

    files: dict[str, tuple[str, int]]
    status: str
    staged: str
    index: str


def user_state(repo: Path) -> UserState:
    """Fingerprint the user's tree (outside .git and .aetherflow), `git status`, `git diff --cached`, the index."""
    index = hashlib.sha256((repo / ".git" / "index").read_bytes()).hexdigest()
    files = {}
    for path in sorted(repo.rglob("*")):
        rel = path.relative_to(repo).as_posix()
        if rel.split("/")[0] in (".git", ".aetherflow"):
            continue
        if path.is_symlink():
            files[rel] = ("link:" + str(path.readlink()), 0)
        elif path.is_file():
            files[rel] = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mode & 0o777)
    return UserState(
        files=files,
        status=git(repo, "status", "--porcelain", "--untracked-files=all"),
        staged=git(repo, "diff", "--cached"),
        index=index,
    )


def make_repo(root: Path, files: dict[str, str | bytes]) -> Path:
    """A git repository at `root` with `files` committed as its first commit."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q")
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root
