"""The pipeline for a weak local model: one subtask without a planning call, whole files, the project's tests
fed back, new candidates, then the next model of the local cascade (scripted models on loopback)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from pipeline_support import make_repo, services_for

from aetherflow.errors import RunInterrupted
from aetherflow.orchestrator.pipeline import Pipeline
from aetherflow.testing.script import RecordedRequest
from aetherflow.testing.server import Reply, ScriptedServer

STUB = "def add(a, b):\n    pass\n"
WRONG = "def add(a, b):\n    return a - b\n"
RIGHT = "def add(a, b):\n    return a + b\n"
TESTS = ("import unittest\nfrom calc import add\n\n\nclass T(unittest.TestCase):\n"
         "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n")
FILES = {"calc.py": STUB, "test_calc.py": TESTS}
REQUEST = "Implement add(a, b) in calc.py so that it returns the sum."


def _local(server: ScriptedServer, name: str) -> dict[str, Any]:
    return {"model": f"openai/{name}", "api_base": server.base_url, "key_env": None, "local": True,
            "capabilities": ["streaming"], "price": {"input": 0.0, "output": 0.0}, "context_window": 8192}


def _settings(server: ScriptedServer, cascade: list[str], samples: int = 2) -> dict[str, Any]:
    agents = {name: {"model": cascade[0], "fallbacks": cascade[1:]}
              for name in ("orchestrator", "coder", "editor", "analyst", "prototyper", "verifier", "reasoner")}
    return {"models": {"cheap": _local(server, "cheap"), "strong": _local(server, "strong")}, "agents": agents,
            "gateway": {"local_alias": cascade}, "checks": {"commands": {"tests": "python -m unittest -q"},
                                                             "samples": samples, "fix_rounds": 1},
            "cache": {"enabled": False}}


def _texts(req: RecordedRequest) -> str:
    return json.dumps(req.body.get("messages", []))


def _answer(content: str) -> Reply:
    return Reply(text=f"calc.py\n```python\n{content}```\nImplemented add.")


def _script(answers: dict[str, list[str]]):
    """Each model answers its scripted files in turn; the summary request gets a fixed text."""
    used: dict[str, int] = {}

    def script(req: RecordedRequest) -> Reply:
        if "Summarise" in _texts(req):
            return Reply(text="Scripted summary.")
        model = str(req.body.get("model"))
        step = used.get(model, 0)
        used[model] = step + 1
        return _answer(answers[model][min(step, len(answers[model]) - 1)])

    return script


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", FILES)


def _completions(server: ScriptedServer) -> list[RecordedRequest]:
    return [r for r in server.requests if r.path.endswith("/chat/completions") and "Summarise" not in _texts(r)]


def test_a_failing_answer_is_fixed_with_the_test_output_and_no_plan_is_asked_for(repo, scripted_server):
    scripted_server.script = _script({"cheap": [WRONG, RIGHT]})
    pipeline = Pipeline(services_for(repo, scripted_server, **_settings(scripted_server, ["cheap"])))

    result = asyncio.run(pipeline.run(REQUEST))

    assert result.status == "review", result.message
    assert result.plan is not None and len(result.plan.tasks) == 1
    calls = _completions(scripted_server)
    assert len(calls) == 2 and not any(c.body.get("response_format") for c in calls)
    assert 1024 <= calls[0].body["max_tokens"] < 1100  # bounded by the file it rewrites, not the agent's 8192
    first, fix = (json.dumps(c.body["messages"]) for c in calls)
    assert "test_calc.py" in first and "reference" in first and STUB.split("\n")[0] in first
    assert "AssertionError" in fix and "-1 != 5" in fix
    assert result.changeset.get("calc.py") is not None and "+    return a + b" in result.changeset.get("calc.py").diff()
    assert [c.ok for c in result.checks] == [True]
    assert (repo / "calc.py").read_text() == STUB  # nothing applied before review


def test_the_cascade_escalates_to_the_stronger_model_when_the_candidates_fail(repo, scripted_server):
    scripted_server.script = _script({"cheap": [WRONG], "strong": [RIGHT]})
    settings = _settings(scripted_server, ["cheap", "strong"], samples=2)
    pipeline = Pipeline(services_for(repo, scripted_server, **settings))

    result = asyncio.run(pipeline.run(REQUEST))

    models = [c.body["model"] for c in _completions(scripted_server)]
    assert models == ["cheap"] * 4 + ["strong"], models  # 2 candidates x (answer + fix), then the next model
    temperatures = [c.body.get("temperature") for c in _completions(scripted_server)]
    assert temperatures[2] is not None and temperatures[2] > (temperatures[0] or 0)
    assert result.outcomes["task"].alias == "strong" and result.outcomes["task"].status == "done"
    assert "+    return a + b" in result.changeset.get("calc.py").diff()


def test_when_every_candidate_fails_tests_that_failed_before_the_last_answer_is_offered_as_failing(repo,
                                                                                                   scripted_server):
    scripted_server.script = _script({"cheap": [WRONG]})
    pipeline = Pipeline(services_for(repo, scripted_server, **_settings(scripted_server, ["cheap"], samples=2)))

    result = asyncio.run(pipeline.run(REQUEST))

    assert len(_completions(scripted_server)) == 4
    assert result.status == "review" and [c.ok for c in result.checks] == [False]
    assert "+    return a - b" in result.changeset.get("calc.py").diff()
    assert (repo / "calc.py").read_text() == STUB  # offered for review, not applied


def test_a_model_that_rewrites_the_tests_is_refused(repo, scripted_server):
    cheating = Reply(text=f"test_calc.py\n```python\nimport unittest\n```\n\ncalc.py\n```python\n{RIGHT}```")
    scripted_server.script = lambda req: Reply(text="summary") if "Summarise" in _texts(req) else cheating
    pipeline = Pipeline(services_for(repo, scripted_server, **_settings(scripted_server, ["cheap"])))

    result = asyncio.run(pipeline.run(REQUEST))

    assert result.changeset.paths() == ["calc.py"]


BROKEN_BEFORE = ("import unittest\nfrom calc import add\n\n\nclass T(unittest.TestCase):\n"
                 "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n\n"
                 "    def test_network(self):\n        self.fail('needs a network service')\n")


def test_checks_that_failed_before_the_change_do_not_hold_it_back_on_the_last_model(tmp_path, scripted_server):
    repo = make_repo(tmp_path / "repo", {"calc.py": STUB, "test_calc.py": BROKEN_BEFORE})
    scripted_server.script = _script({"cheap": [RIGHT], "strong": [RIGHT]})
    pipeline = Pipeline(services_for(repo, scripted_server, **_settings(scripted_server, ["cheap", "strong"])))

    result = asyncio.run(pipeline.run(REQUEST))

    # Both models were tried (the tests still fail), then the last one's answer is kept and reported as such.
    assert [c.body["model"] for c in _completions(scripted_server)] == ["cheap"] * 4 + ["strong"] * 4
    assert result.status == "review" and "+    return a + b" in result.changeset.get("calc.py").diff()
    assert [c.ok for c in result.checks] == [False]
    assert "still fail, as they did before this change" in result.outcomes["task"].output


def test_an_answer_that_breaks_a_check_that_passed_before_is_never_kept(tmp_path, scripted_server):
    passing = {"calc.py": RIGHT, "test_calc.py": TESTS}
    repo = make_repo(tmp_path / "repo", passing)
    scripted_server.script = _script({"cheap": [WRONG]})
    pipeline = Pipeline(services_for(repo, scripted_server, **_settings(scripted_server, ["cheap"])))

    with pytest.raises(RunInterrupted):
        asyncio.run(pipeline.run("Rewrite add in calc.py more simply."))

    assert (repo / "calc.py").read_text() == RIGHT
