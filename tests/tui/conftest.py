"""Fixtures of the TUI tests: a private git configuration and a small committed repository."""

from __future__ import annotations

from pathlib import Path

import pytest
from tui_support import UTIL, make_repo

AUTH = "def login(user):\n    return check(user)\n\n\ndef check(user):\n    return bool(user)\n"


@pytest.fixture(autouse=True)
def git_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A private git configuration: no global or system config of the developer leaks into a test."""
    config = tmp_path / "gitconfig"
    config.write_text("[init]\n\tdefaultBranch = main\n[user]\n\tname = Tester\n\temail = tester@example.com\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A committed repository with a small package and a README."""
    return make_repo(tmp_path / "repo", {"app/auth.py": AUTH, "app/util.py": UTIL, "README.md": "# Demo\n"})
