"""Fixtures of the workspace tests: a private git configuration and a small committed repository."""

from __future__ import annotations

from pathlib import Path

import pytest
from workspace_support import make_repo


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
    """A small committed repository: a Python package, a README and a .gitignore."""
    return make_repo(
        tmp_path / "repo",
        {
            "app/__init__.py": "",
            "app/auth.py": "def login(user):\n    return check(user)\n\n\ndef check(user):\n    return bool(user)\n",
            "app/util.py": "".join(f"line {i}\n" for i in range(1, 31)),
            "README.md": "# Demo\n",
            ".gitignore": "*.log\nbuild/\n",
        },
    )
