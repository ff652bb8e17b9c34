"""A local model served over HTTP on this machine (Ollama, llama.cpp's server): `local = true` with a loopback
api_base. It is free, it is what privacy.local_only allows, and it can stand in for the embedded model."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from aetherflow.config.models import ModelConfig
from aetherflow.errors import ProviderError
from aetherflow.events import EventBus
from aetherflow.llm.gateway import Gateway
from aetherflow.llm.types import CallRequest, Message
from aetherflow.testing.server import Fault, Reply, ScriptedServer
from aetherflow.testing.settings import scripted_environ, scripted_settings


@pytest.mark.parametrize("url", ["http://127.0.0.1:11434", "http://localhost:8080/v1", "http://[::1]:11434"])
def test_a_local_model_may_be_served_on_a_loopback_address(url: str) -> None:
    model = ModelConfig(model="ollama_chat/qwen", api_base=url, local=True)

    assert model.local and not model.embedded


@pytest.mark.parametrize("url", ["http://10.0.0.5:11434", "https://api.example.com/v1", "http://127.0.0.1.evil.io"])
def test_a_local_model_elsewhere_is_refused_with_the_reason(url: str) -> None:
    with pytest.raises(ValidationError) as refused:
        ModelConfig(model="ollama_chat/qwen", api_base=url, local=True)

    assert "must be served on this machine" in str(refused.value) and url in str(refused.value)


def _gateway(cloud: ScriptedServer, on_machine: ScriptedServer, tmp_path: Path) -> Gateway:
    settings = scripted_settings(
        cloud,
        models={"ollama": {"model": "openai/qwen-local", "api_base": on_machine.base_url, "local": True,
                           "capabilities": ["streaming", "tools"]}},
        gateway={"local_alias": "ollama", "max_retries": 0},
        privacy={"local_only": True},
        cache={"enabled": False},
    )
    return Gateway(settings, EventBus(), environ=scripted_environ(), cache_dir=tmp_path / "cache")


async def test_local_only_sends_an_agents_calls_to_the_local_server_and_nothing_to_the_cloud(
    scripted_server: ScriptedServer, tmp_path: Path
) -> None:
    with ScriptedServer() as on_machine:
        on_machine.enqueue(Reply(text="answered on this machine", prompt_tokens=50, completion_tokens=5))
        gateway = _gateway(scripted_server, on_machine, tmp_path)
        try:
            result = await gateway.complete(CallRequest(agent="coder", messages=[Message(role="user", content="hi")]))
        finally:
            await gateway.aclose()
        local_requests = on_machine.completion_requests()

    assert result.text == "answered on this machine" and result.alias == "ollama"
    assert result.cost_usd == 0.0
    assert len(local_requests) == 1 and local_requests[0].body["model"] == "qwen-local"
    assert scripted_server.request_count == 0


async def test_a_failing_local_server_never_falls_back_to_the_cloud(
    scripted_server: ScriptedServer, tmp_path: Path
) -> None:
    with ScriptedServer() as on_machine:
        on_machine.enqueue(Fault(status=500, message="model crashed"))
        gateway = _gateway(scripted_server, on_machine, tmp_path)
        try:
            with pytest.raises(ProviderError) as failed:
                await gateway.complete(CallRequest(agent="coder", messages=[Message(role="user", content="hi")]))
        finally:
            await gateway.aclose()

    assert "ollama" in failed.value.message and "local_only" in (failed.value.hint or "")
    assert scripted_server.request_count == 0


def test_local_only_refuses_an_index_server_on_another_machine() -> None:
    """Chunks of code go to the index server: under local_only it must be on this machine too."""
    from aetherflow.config.loader import load_settings
    from aetherflow.errors import ConfigError

    with pytest.raises(ConfigError) as refused:
        load_settings(None, flags={"privacy": {"local_only": True}, "index": {"url": "http://qdrant.example:6333"}},
                      environ={})
    allowed = load_settings(None, flags={"privacy": {"local_only": True}, "index": {"url": "http://127.0.0.1:6333"}},
                            environ={})

    assert "index.url" in refused.value.message and "another machine" in refused.value.message
    assert allowed.index.url == "http://127.0.0.1:6333"
