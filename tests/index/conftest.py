"""Fixtures for the index tests: real temporary git repositories, the offline embedding model, and `aether`.

Dense embeddings come from the ONNX model in ../shared/models/all-MiniLM-L6-v2-onnx (beside the repository);
when that folder is missing, fastembed downloads the model where a network exists.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from index_support import GIT_IDENTITY, PROJECT_ROOT, commit, git, model_path

from aetherflow.config.models import IndexConfig
from aetherflow.index.embedder import FastEmbedder


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., Path]:
    """`make_repo(files, name="repo")`: a new git repository with `files` committed (none: no commit)."""

    def make(files: dict[str, str | bytes | None] | None = None, name: str = "repo") -> Path:
        root = tmp_path / name
        root.mkdir()
        git(root, "init", "-q", "-b", "main")
        if files:
            commit(root, files, "initial")
        return root.resolve()

    return make


@pytest.fixture(scope="session")
def index_config() -> IndexConfig:
    """Index settings that load the embedding model offline when the shared folder exists."""
    return IndexConfig(model_path=model_path())


@pytest.fixture(scope="session")
def embedder(index_config: IndexConfig) -> FastEmbedder:
    """One loaded embedder for the whole session (loading costs a fraction of a second each time)."""
    return FastEmbedder(index_config)


@pytest.fixture
def aether_env(aether_home: Path) -> dict[str, str]:
    """The environment of an `aether` subprocess: the project importable, the model path, an isolated home."""
    env = {**os.environ, **GIT_IDENTITY, "COLUMNS": "250", "AETHER_HOME": str(aether_home)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    env["GIT_CONFIG_GLOBAL"] = os.devnull
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    if model_path():
        env["AETHER_INDEX__MODEL_PATH"] = model_path() or ""
    return env


@pytest.fixture
def aether(aether_env: dict[str, str]) -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    """`aether(cwd, *args)`: run `python -m aetherflow ARGS` in a subprocess, as a user would."""

    def run(cwd: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "aetherflow", *args],
            cwd=cwd, env=aether_env, capture_output=True, text=True, timeout=timeout,
        )

    yield run
