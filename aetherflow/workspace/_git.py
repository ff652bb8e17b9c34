"""Running git for the workspace: a clean environment, no hooks unless asked, errors that say what to do."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from aetherflow.errors import AetherError

# Variables a parent git process (a hook, `git rebase -x`) may set; inherited, they would point our commands at
# the user's index or another repository.
_INHERITED_GIT_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_PREFIX",
    "GIT_NAMESPACE",
)

# Commits AetherFlow makes inside its own worktree: fixed identity, no signing, no hooks.
BOT_CONFIG = (
    "-c", "core.hooksPath=/dev/null",
    "-c", "commit.gpgsign=false",
    "-c", "user.name=AetherFlow",
    "-c", "user.email=aetherflow@localhost",
)  # fmt: skip


def git_env() -> dict[str, str]:
    """The environment for git: no inherited repository variables, no optional index writes, no prompts.

    GIT_OPTIONAL_LOCKS=0 stops read-only commands such as `git status` from refreshing (rewriting) the index.
    """
    env = {k: v for k, v in os.environ.items() if k not in _INHERITED_GIT_VARS}
    env.update(GIT_OPTIONAL_LOCKS="0", GIT_TERMINAL_PROMPT="0", LC_ALL="C")
    return env


def run_git(cwd: Path, *args: str, check: bool = True, input_bytes: bytes | None = None) -> bytes:
    """Run `git args...` in `cwd` and return its stdout; raise AetherError naming the command on failure."""
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=git_env(),
        input=input_bytes,
        stdin=None if input_bytes is not None else subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    if check and proc.returncode != 0:
        stderr = proc.stderr.decode("utf-8", "replace").strip()
        raise AetherError(
            f"git {' '.join(args[:3])} failed in {cwd}: {stderr or f'exit code {proc.returncode}'}",
            "Check that the repository is healthy (`git status`), then run the command again.",
        )
    return proc.stdout


def git_ok(cwd: Path, *args: str) -> bool:
    """True when `git args...` exits 0 (used for questions such as 'is there a HEAD?')."""
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=git_env(), capture_output=True, stdin=subprocess.DEVNULL, check=False
    )
    return proc.returncode == 0


def split_z(output: bytes) -> list[str]:
    """Split NUL-terminated git output (`-z`) into paths; git paths are bytes, decoded with surrogateescape."""
    return [p.decode("utf-8", "surrogateescape") for p in output.split(b"\0") if p]
