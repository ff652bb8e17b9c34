"""Helpers the index tests share (imported by conftest.py and the test modules)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import aetherflow

PROJECT_ROOT = Path(aetherflow.__file__).resolve().parent.parent
MODEL_DIR = PROJECT_ROOT.parent / "shared" / "models" / "all-MiniLM-L6-v2-onnx"
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def model_path() -> str | None:
    return str(MODEL_DIR) if MODEL_DIR.is_dir() else None


def git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run git in `repo` with a fixed identity and no user/system config."""
    env = {**os.environ, **GIT_IDENTITY, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=check)


def write(repo: Path, files: dict[str, str | bytes | None]) -> None:
    """Create, overwrite (str/bytes) or delete (None) files under `repo`."""
    for rel, content in files.items():
        target = repo / rel
        if content is None:
            target.unlink()
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")


def commit(repo: Path, files: dict[str, str | bytes | None] | None = None, message: str = "change") -> str:
    """Apply `files`, commit everything, and return the new HEAD."""
    write(repo, files or {})
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--no-verify", "-m", message)
    return git(repo, "rev-parse", "HEAD").stdout.strip()


def wait_until(condition: Callable[[], bool], timeout_s: float = 60.0, what: str = "condition") -> None:
    """Poll `condition` until it holds; fail the test when `timeout_s` passes first."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)
