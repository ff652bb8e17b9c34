"""Fixtures for the command-line tests: a real temporary git repository, and two ways to run `aether`.

`cli` runs the Typer app in-process (fast; an AetherError surfaces as `result.exception`). `aether` runs
`python -m aetherflow` in a subprocess, which is what a user gets: real exit codes, stdout and stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import PROJECT_ROOT, AetherRun, CliInvoke, git_init
from click.testing import Result
from typer.testing import CliRunner

from aetherflow.cli import _register, app


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh git repository, made the current directory."""
    root = git_init(tmp_path / "repo")
    monkeypatch.chdir(root)
    monkeypatch.setenv("COLUMNS", "250")
    return root


@pytest.fixture
def cli() -> CliInvoke:
    """Invoke the app in-process: `cli("agents", "list", env={...})`."""
    _register()
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(app, list(args), env={"COLUMNS": "250", **(env or {})})

    return invoke


@pytest.fixture
def aether(repo: Path) -> AetherRun:
    """Run `python -m aetherflow ARGS` in a subprocess (cwd: the repo unless `cwd=` is given)."""

    def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        environ = {**os.environ, "COLUMNS": "250", **(env or {})}
        environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), environ.get("PYTHONPATH")]))
        return subprocess.run(
            [sys.executable, "-m", "aetherflow", *args],
            cwd=cwd or repo, env=environ, capture_output=True, text=True, timeout=120,
        )

    return run
