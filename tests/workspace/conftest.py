"""Fixtures of the workspace tests: a private git configuration and a small committed repository."""

from __future__ import annotations

from pathlib import Path

import pytest
from git_support import use_private_git_config
from workspace_support import make_repo


@pytest.fixture(autouse=True)
def git_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A private git configuration: no global or system config of the developer leaks into a test."""
    use_private_git_config(tmp_path, monkeypatch)


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
