"""A private git configuration for tests that run git: no global or system config of the developer leaks in."""

from __future__ import annotations

from pathlib import Path

import pytest

GITCONFIG = "[init]\n\tdefaultBranch = main\n[user]\n\tname = Tester\n\temail = tester@example.com\n"


def use_private_git_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point git at a config file under `tmp_path` (identity, default branch) and ignore the system one."""
    config = tmp_path / "gitconfig"
    config.write_text(GITCONFIG)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(name, raising=False)
