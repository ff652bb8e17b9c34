"""`aether models`: key presence without values, prices and their source, local status, users of each model."""

from __future__ import annotations

import json
from pathlib import Path

from cli_support import AetherRun, CliInvoke, write_trusted_config

SECRET = "sk-test-DO-NOT-PRINT-4f9a1c"


def test_models_json_reports_key_presence_never_values(repo: Path, aether: AetherRun) -> None:
    result = aether("models", "--json", env={"DEEPSEEK_API_KEY": SECRET})

    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    rows = {row["alias"]: row for row in json.loads(result.stdout)}
    assert rows["deepseek"]["key_env"] == "DEEPSEEK_API_KEY"
    assert rows["deepseek"]["key_set"] is True
    assert rows["sonnet"]["key_set"] is False
    assert rows["local"]["key_set"] is None
    assert rows["local"]["location"] == "local"
    assert isinstance(rows["local"]["installed"], bool) and rows["local"]["status"]
    assert (rows["sonnet"]["price_in_per_1m"], rows["sonnet"]["price_out_per_1m"]) == (3.0, 15.0)
    assert rows["sonnet"]["price_source"] == "config"
    assert set(rows["deepseek"]["agents"]) >= {"coder", "orchestrator"}
    assert "vision" in rows["gemini-flash"]["capabilities"]


def test_models_table_shows_missing_keys_and_prices(repo: Path, cli: CliInvoke) -> None:
    result = cli("models", env={"GROQ_API_KEY": SECRET})

    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    assert "GROQ_API_KEY set" in result.output
    assert "ANTHROPIC_API_KEY missing" in result.output
    assert "0.59 / 0.79" in result.output
    assert "groq/llama-3.3-70b-versatile" in result.output


def test_model_added_by_configuration_alone_gets_litellm_price_or_unknown(repo: Path, cli: CliInvoke) -> None:
    write_trusted_config(repo, 
        '[models.gpt-4o]\nmodel = "openai/gpt-4o"\nkey_env = "OPENAI_API_KEY"\n\n'
        '[models.homebrew]\nmodel = "openai/homebrew-model-xyz"\napi_base = "http://127.0.0.1:9/v1"\n'
    )

    result = cli("models", "--json")

    assert result.exit_code == 0, result.output
    rows = {row["alias"]: row for row in json.loads(result.output)}
    assert rows["gpt-4o"]["price_source"] == "litellm table"
    assert rows["gpt-4o"]["price_in_per_1m"] > 0
    assert rows["homebrew"]["price_source"] == "unknown"
    assert rows["homebrew"]["price_in_per_1m"] is None
    assert rows["homebrew"]["key_set"] is None
    assert rows["homebrew"]["api_base"] == "http://127.0.0.1:9/v1"
