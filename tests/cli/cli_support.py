"""Shared pieces of the command-line tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from click.testing import Result

import aetherflow

PROJECT_ROOT = Path(aetherflow.__file__).resolve().parent.parent

CliInvoke = Callable[..., Result]
AetherRun = Callable[..., subprocess.CompletedProcess[str]]


def git_init(folder: Path) -> Path:
    """Create `folder` as an empty git work tree."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    return folder
