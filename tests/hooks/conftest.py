"""Fixtures for the hook tests: real temporary git repositories whose aetherflow.toml points at a scripted server,
and real `git commit` runs that invoke the installed hook with this venv's Python."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hook_support import GIT_IDENTITY, PROJECT_ROOT, git

from aetherflow.testing.settings import SCRIPTED_KEY, SCRIPTED_KEY_ENV


@pytest.fixture
def hook_env(aether_home: Path) -> dict[str, str]:
    """The environment of a `git commit`: the scripted key, an isolated home, no user or system git config."""
    env = {k: v for k, v in os.environ.items() if k != "AETHER_SKIP"}
    env.update(GIT_IDENTITY, AETHER_HOME=str(aether_home), GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
    env[SCRIPTED_KEY_ENV] = SCRIPTED_KEY
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    return env



@pytest.fixture
def make_repo(tmp_path: Path, hook_env: dict[str, str]) -> Callable[..., Path]:
    """`make_repo()`: a repository with one commit (a.py), made without hooks."""

    def make(name: str = "repo") -> Path:
        root = tmp_path / name
        root.mkdir()
        git(root, hook_env, "init", "-q", "-b", "main")
        (root / "a.py").write_text("x = 1\n", encoding="utf-8")
        git(root, hook_env, "add", "a.py")
        git(root, hook_env, "commit", "-q", "--no-verify", "-m", "initial")
        return root.resolve()

    return make

