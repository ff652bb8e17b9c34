"""Fixtures of the TUI tests: a private git configuration and a small committed repository."""

from __future__ import annotations

from pathlib import Path

import pytest
from git_support import use_private_git_config
from tui_support import UTIL, make_repo

AUTH = "def login(user):\n    return check(user)\n\n\ndef check(user):\n    return bool(user)\n"


@pytest.fixture(autouse=True)
def git_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A private git configuration: no global or system config of the developer leaks into a test."""
    use_private_git_config(tmp_path, monkeypatch)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A committed repository with a small package and a README."""
    return make_repo(tmp_path / "repo", {"app/auth.py": AUTH, "app/util.py": UTIL, "README.md": "# Demo\n"})
