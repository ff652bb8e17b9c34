"""`aether ask`: one streamed answer through the real gateway, with a cost line or a JSON object."""

from __future__ import annotations

import json
from pathlib import Path

from cli_support import AetherRun, write_trusted_config

from aetherflow.testing.server import Reply, ScriptedServer


def _use_scripted_model(repo: Path, server: ScriptedServer) -> None:
    write_trusted_config(repo, 
        '[models.mine]\nmodel = "openai/mine"\n'
        f'api_base = "{server.base_url}"\n'
        'key_env = "MINE_API_KEY"\nprice = { input = 2.0, output = 4.0 }\n'
    )


def test_ask_json_reports_text_model_usage_and_cost(repo: Path, aether: AetherRun, scripted_server: ScriptedServer) -> None:
    _use_scripted_model(repo, scripted_server)
    scripted_server.enqueue(Reply(text="Passwords are hashed with PBKDF2.", prompt_tokens=1000, completion_tokens=500))

    result = aether("ask", "--model", "mine", "--json", "How are passwords stored?", env={"MINE_API_KEY": "k"})

    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["text"] == "Passwords are hashed with PBKDF2."
    assert answer["alias"] == "mine" and answer["model"] == "openai/mine"
    assert answer["usage"]["prompt_tokens"] == 1000 and answer["usage"]["completion_tokens"] == 500
    assert answer["cost_usd"] == 1000 * 2.0 / 1e6 + 500 * 4.0 / 1e6
    assert answer["cache_hit"] is False and answer["context"] == []
    [request] = scripted_server.completion_requests()
    assert request.body["messages"][-1]["content"] == "How are passwords stored?"


def test_ask_streams_text_then_prints_the_cost_line(repo: Path, aether: AetherRun, scripted_server: ScriptedServer) -> None:
    _use_scripted_model(repo, scripted_server)
    scripted_server.enqueue(Reply(text="It uses salted hashes.", prompt_tokens=10, completion_tokens=5))

    result = aether("ask", "-m", "mine", "How?", env={"MINE_API_KEY": "k"})

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "It uses salted hashes."
    assert "mine (openai/mine)" in result.stderr and "10 in / 5 out" in result.stderr and "$0.0000" in result.stderr


def test_ask_a_second_time_is_a_free_cache_hit(repo: Path, aether: AetherRun, scripted_server: ScriptedServer) -> None:
    _use_scripted_model(repo, scripted_server)
    scripted_server.enqueue(Reply(text="Cached answer.", prompt_tokens=100, completion_tokens=10))
    env = {"MINE_API_KEY": "k"}

    first = json.loads(aether("ask", "-m", "mine", "--json", "Same question", env=env).stdout)
    second = json.loads(aether("ask", "-m", "mine", "--json", "Same question", env=env).stdout)

    assert first["cache_hit"] is False and second["cache_hit"] is True
    assert second["text"] == "Cached answer." and second["cost_usd"] == 0
    assert len(scripted_server.completion_requests()) == 1


def test_ask_without_any_usable_model_says_which_key_to_set(repo: Path, aether: AetherRun) -> None:
    result = aether("ask", "--model", "deepseek", "Hi", env={"AETHER_GATEWAY__MISSING_KEY": "error"})

    assert result.returncode != 0
    assert "DEEPSEEK_API_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_ask_includes_retrieved_context_once_the_repository_is_indexed(
    repo: Path, aether: AetherRun, scripted_server: ScriptedServer
) -> None:
    import subprocess

    from cli_support import PROJECT_ROOT

    model_dir = PROJECT_ROOT.parent / "shared" / "models" / "all-MiniLM-L6-v2-onnx"
    env = {"MINE_API_KEY": "k", **({"AETHER_INDEX__MODEL_PATH": str(model_dir)} if model_dir.is_dir() else {})}
    (repo / "auth.py").write_text("def verify_password(user, password):\n    return check_hash(user.hash, password)\n")
    ident = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(["git", *ident, "add", "auth.py"], cwd=repo, check=True)
    subprocess.run(["git", *ident, "commit", "-qm", "auth"], cwd=repo, check=True)
    assert aether("index", env=env).returncode == 0
    _use_scripted_model(repo, scripted_server)
    scripted_server.enqueue(Reply(text="By verify_password.", prompt_tokens=10, completion_tokens=3))

    answer = json.loads(aether("ask", "-m", "mine", "--json", "How is a password checked?", env=env).stdout)

    assert answer["context"] and answer["context"][0].startswith("auth.py:1")
    [request] = scripted_server.completion_requests()
    assert "def verify_password(user, password):" in json.dumps(request.body["messages"])
