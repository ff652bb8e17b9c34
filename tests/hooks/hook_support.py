"""Helpers for the hook tests: git in a repository, a timed `git commit`, staging files, a scripted config."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import tomlkit

import aetherflow
from aetherflow.config.trust import trust_repository
from aetherflow.testing.settings import deep_merge, scripted_flags

PROJECT_ROOT = Path(aetherflow.__file__).resolve().parent.parent
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com",
}


def git(repo: Path, env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run git in `repo`."""
    return subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=check, timeout=120)


class Commit:
    """The result of one `git commit`: exit status, output, and the seconds it took."""

    def __init__(self, done: subprocess.CompletedProcess[str], seconds: float) -> None:
        self.returncode = done.returncode
        self.stdout = done.stdout
        self.stderr = done.stderr
        self.seconds = seconds


def commit(repo: Path, env: dict[str, str], *extra: str, message: str = "change") -> Commit:
    """`git commit` (hooks run) and how long it took."""
    started = time.monotonic()
    done = git(repo, env, "commit", "-q", "-m", message, *extra, check=False)
    return Commit(done, time.monotonic() - started)


def write_config(repo: Path, base_url: str, **overrides: Any) -> None:
    """aetherflow.toml (left untracked) pointing every agent at `base_url`, with `overrides` merged in."""
    data = deep_merge(scripted_flags(base_url), {"cache": {"enabled": False}, **overrides})
    (repo / "aetherflow.toml").write_text(tomlkit.dumps(data), encoding="utf-8")
    trust_repository(repo)


def stage(repo: Path, env: dict[str, str], files: dict[str, str]) -> None:
    """Write `files` and stage exactly them."""
    for rel, text in files.items():
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    git(repo, env, "add", "--", *files)
