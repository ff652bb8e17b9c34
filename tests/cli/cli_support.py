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


def write_trusted_config(repo: Path, text: str) -> Path:
    """Write the repository's aetherflow.toml and trust it, as its author would (`aether trust`)."""
    from aetherflow.config.trust import trust_repository

    config = repo / "aetherflow.toml"
    config.write_text(text)
    trust_repository(repo)
    return config


def git_init(folder: Path) -> Path:
    """Create `folder` as an empty git work tree."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    return folder
