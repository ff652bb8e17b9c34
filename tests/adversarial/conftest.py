"""Fixtures of the adversarial suite: a private git configuration, the example repository with the user's own
changes, and a fake home directory beside it."""

from __future__ import annotations

from pathlib import Path

import pytest
from adversarial_support import fake_home, make_demo_repo
from git_support import use_private_git_config


@pytest.fixture(autouse=True)
def git_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A private git configuration: no global or system config of the developer leaks into a test."""
    use_private_git_config(tmp_path, monkeypatch)


@pytest.fixture
def demo_repo(tmp_path: Path) -> Path:
    """examples/demo-app committed in a new repository, with a staged edit, an unstaged edit and an untracked file."""
    return make_demo_repo(tmp_path / "repo")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fake home directory beside the repository (.bashrc, .ssh/id_rsa) that nothing may read or write."""
    return fake_home(tmp_path / "victim-home")
