"""`aether doctor`: checks with next steps, exit 1 on a failed check, `--ping` through the real gateway."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

from cli_support import AetherRun, write_trusted_config

from aetherflow.cli.doctor import Check, ping_models, ping_targets
from aetherflow.config.loader import load_settings
from aetherflow.testing.script import Fault, RecordedRequest, Reply
from aetherflow.testing.server import ScriptedServer
from aetherflow.testing.settings import scripted_environ, scripted_settings


def _checks(stdout: str) -> dict[str, dict[str, str]]:
    return {check["name"]: check for check in json.loads(stdout)["checks"]}


def test_doctor_outside_a_repository_fails_with_next_step(tmp_path: Path, aether: AetherRun) -> None:
    result = aether("doctor", "--json", cwd=tmp_path, env={"DEEPSEEK_API_KEY": "sk-test"})

    assert result.returncode == 1
    checks = _checks(result.stdout)
    assert checks["repository"]["status"] == "fail"
    assert "git init" in checks["repository"]["next_step"]
    assert checks["git"]["status"] == "ok" and checks["git"]["detail"].startswith("git version")
    assert checks["index"]["status"] == "skip"


def test_doctor_with_a_broken_config_names_the_file(repo: Path, aether: AetherRun) -> None:
    config = repo / "aetherflow.toml"
    write_trusted_config(repo, "[budget\n")

    result = aether("doctor")

    assert result.returncode == 1
    assert "✗ config" in result.stdout
    assert str(config) in result.stdout
    assert "keys: configuration is invalid" in result.stdout


def test_doctor_healthy_repository_passes_and_reports_keys(repo: Path, aether: AetherRun) -> None:
    write_trusted_config(repo, "[budget]\nper_run_usd = 1.0\n")
    (repo / ".aetherflow" / "index").mkdir(parents=True)

    result = aether("doctor", "--json", env={"DEEPSEEK_API_KEY": "sk-test-hidden"})

    assert result.returncode == 0, result.stdout + result.stderr
    assert "sk-test-hidden" not in result.stdout
    checks = _checks(result.stdout)
    assert checks["config"]["status"] == "ok"
    assert "aetherflow.toml" in checks["config"]["detail"]
    assert checks["key DEEPSEEK_API_KEY"]["status"] == "ok"
    assert checks["key ANTHROPIC_API_KEY"]["status"] == "warn"
    assert "export ANTHROPIC_API_KEY" in checks["key ANTHROPIC_API_KEY"]["next_step"]
    assert checks["usable models"]["status"] == "ok"
    assert checks["index"]["status"] == "ok"
    assert json.loads(result.stdout)["ok"] is True


def test_doctor_reports_missing_index_with_the_command_to_build_it(repo: Path, aether: AetherRun) -> None:
    result = aether("doctor", env={"DEEPSEEK_API_KEY": "sk-test"})

    assert "! index: not built" in result.stdout
    assert "aether index" in result.stdout


def test_ping_targets_skip_models_without_keys(repo: Path) -> None:
    settings = load_settings(repo, environ={})

    targets, skipped = ping_targets(settings, {"MISTRAL_API_KEY": "x"}, local_ok=False)

    assert targets == ["codestral", "mistral-small"]
    reasons = {check.name: check.detail for check in skipped}
    assert reasons["ping sonnet"] == "ANTHROPIC_API_KEY is not set"
    assert reasons["ping local"] == "local model not installed"


def test_ping_calls_every_usable_model_in_parallel_and_reports_errors(
    repo: Path, scripted_server: ScriptedServer
) -> None:
    # Both requests must be in flight at once to pass the barrier: a sequential ping would time out there.
    both_arrived = threading.Barrier(2, timeout=5)

    def answer(request: RecordedRequest) -> Reply | Fault:
        both_arrived.wait()
        if request.body["model"] == "fast":
            return Reply(text="p", prompt_tokens=3, completion_tokens=1)
        return Fault(status=400, message="model strong is switched off")

    scripted_server.script = answer
    settings = scripted_settings(scripted_server)
    environ = scripted_environ()
    targets, skipped = ping_targets(settings, environ, local_ok=False)

    checks = asyncio.run(ping_models(settings, repo, targets, environ))

    assert targets == ["fast", "strong"]
    by_name = {check.name: check for check in checks}
    assert by_name["ping fast"].status == "ok" and " ms " in by_name["ping fast"].detail
    assert by_name["ping strong"].status == "fail"
    assert "switched off" in by_name["ping strong"].detail
    bodies = [request.body for request in scripted_server.completion_requests()]
    assert sorted(body["model"] for body in bodies) == ["fast", "strong"]
    assert [body["max_tokens"] for body in bodies] == [1, 1]
    assert {check.name for check in skipped} >= {"ping sonnet", "ping local"}
    assert all(isinstance(check, Check) for check in checks)


def test_doctor_ping_end_to_end_exits_1_when_a_model_fails(
    repo: Path, aether: AetherRun, scripted_server: ScriptedServer
) -> None:
    scripted_server.enqueue(Fault(status=401, message="bad key"))
    write_trusted_config(repo, 
        '[models.mine]\nmodel = "openai/mine"\n'
        f'api_base = "{scripted_server.base_url}"\n'
        'key_env = "MINE_API_KEY"\nprice = { input = 1.0, output = 1.0 }\n'
    )

    result = aether("doctor", "--ping", "--json", env={"MINE_API_KEY": "k"})

    checks = _checks(result.stdout)
    assert result.returncode == 1, result.stdout + result.stderr
    assert checks["ping mine"]["status"] == "fail"
    assert "bad key" in checks["ping mine"]["detail"]
    assert checks["ping sonnet"]["status"] == "skip"
    assert len(scripted_server.completion_requests()) == 1
