"""Run context: retrieval from the index, and runs that go on when the index is unusable."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_support import make_repo

import aetherflow
from aetherflow.config import load_settings
from aetherflow.index.service import run_update
from aetherflow.orchestrator.context import RunContext
from aetherflow.orchestrator.plan import TaskSpec

MODEL_DIR = Path(aetherflow.__file__).resolve().parents[2] / "shared" / "models" / "all-MiniLM-L6-v2-onnx"
FILES = {"auth.py": "def verify_password(user, password):\n    return check_hash(user.hash, password)\n",
         "util.py": "def slugify(text):\n    return text.lower().replace(' ', '-')\n"}


@pytest.fixture
def settings():
    if not MODEL_DIR.is_dir():
        pytest.skip("the shared embedding model folder is missing")
    return load_settings(None, flags={"index": {"model_path": str(MODEL_DIR)}}, environ={})


def test_search_and_task_context_come_from_the_index(tmp_path, settings):
    repo = make_repo(tmp_path / "repo", FILES)
    run_update(repo, settings.index)
    context = RunContext(repo, settings, environ={})

    hits = context.search_code("check a user's password", 2)
    task_context = context.task_context(TaskSpec(id="t", type="local_refactor", description="password checks"))

    assert context.available
    assert hits[0].startswith("auth.py:1-2 verify_password")
    assert "verify_password" in task_context



def test_an_unusable_index_leaves_the_run_without_context(tmp_path):
    repo = make_repo(tmp_path / "repo", FILES)
    broken = load_settings(None, flags={"index": {"url": "http://127.0.0.1:9", "api_key_env": "MISSING_QDRANT_KEY"}},
                           environ={})
    context = RunContext(repo, broken, environ={})

    plan_context = context.plan_context("anything", past_solutions=[])

    assert not context.available
    assert context.search_code("anything", 3) == []
    assert "auth.py" in plan_context.repo_map and plan_context.chunks == []
