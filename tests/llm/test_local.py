"""The embedded SmolLM2 model through LocalTransport: real generations, structured output, refusal, cancellation."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field, StringConstraints

from aetherflow.config.loader import load_settings
from aetherflow.config.models import ModelConfig
from aetherflow.errors import ModelUnavailableError
from aetherflow.events import EventBus
from aetherflow.llm.gateway import Gateway
from aetherflow.llm.local import (
    MODEL_ID,
    LocalTransport,
    llama_response_format,
    local_model_status,
    plain_messages,
)
from aetherflow.llm.local_model import TINY_MODEL_NOTE
from aetherflow.llm.transport import TransportChunk, TransportError, TransportRequest
from aetherflow.llm.types import CallRequest, Message

needs_llama = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None, reason="the `local` extra (llama-cpp-python) is not installed"
)

# The shipped catalogue's entry, so every test shares the one model copy the process loads.
LOCAL = ModelConfig(
    model=MODEL_ID, local=True, context_window=8192, capabilities=["json_schema", "streaming"], max_concurrency=1
)
# Forces 4000 array items, so a generation runs to the end of the 8k context (over a minute at 100 tokens/s):
# only a working cancellation lets the bounded waits in the cancellation tests succeed.
ENDLESS = {"type": "json_object", "schema": {"type": "array", "items": {"type": "integer"}, "minItems": 4000}}


class Note(BaseModel):
    """A small reply shape with every string and array bounded, as the 135M model needs."""

    title: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    tags: list[Annotated[str, StringConstraints(max_length=12)]] = Field(max_length=3)
    urgent: bool


def request(prompt: str, **fields: Any) -> TransportRequest:
    return TransportRequest(alias="local", model=LOCAL, messages=[{"role": "user", "content": prompt}], **fields)


async def collect(transport: LocalTransport, req: TransportRequest) -> list[TransportChunk]:
    return [chunk async for chunk in transport.stream(req)]


@pytest.fixture
def transport() -> LocalTransport:
    return LocalTransport()


# Tests that need neither llama-cpp nor the weights.


def test_missing_weights_raise_model_unavailable_with_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.gguf"
    with pytest.raises(ModelUnavailableError) as caught:
        LocalTransport(model_path=missing)
    text = str(caught.value)
    assert "pip install 'aetherflow[local]'" in text
    assert "DEEPSEEK_API_KEY" in text
    if importlib.util.find_spec("llama_cpp") is not None:
        assert str(missing) in text


def test_status_reports_missing_file_without_loading(tmp_path: Path) -> None:
    ok, detail = local_model_status(tmp_path / "absent.gguf")
    assert ok is False
    assert "pip install 'aetherflow[local]'" in detail


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, None),
        ({"type": "text"}, None),
        ({"type": "json_object"}, {"type": "json_object"}),
        (
            {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}, "strict": True}},
            {"type": "json_object", "schema": {"type": "object"}},
        ),
    ],
)
def test_response_format_becomes_llama_cpp_form(given: Any, expected: Any) -> None:
    assert llama_response_format(given) == expected


def test_unknown_response_format_is_refused() -> None:
    with pytest.raises(TransportError, match="response_format type 'xml'"):
        llama_response_format({"type": "xml"})


def test_messages_are_reduced_to_role_and_text() -> None:
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "be "}, {"type": "text", "text": "brief"}]},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "user", "content": "hi", "name": "me"},
    ]
    assert plain_messages(messages) == [
        {"role": "system", "content": "be brief"},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "hi"},
    ]
    with pytest.raises(TransportError, match="text only"):
        plain_messages([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}])


# Tests that run the real model.


@pytest.mark.local_model
@needs_llama
def test_status_names_the_bundled_file() -> None:
    ok, detail = local_model_status()
    assert ok, detail
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in detail and "MB" in detail
    # Wherever it is offered, the bundled model says what it is and how to get a real one.
    assert TINY_MODEL_NOTE in detail


@pytest.mark.local_model
@needs_llama
async def test_streams_text_and_usage(transport: LocalTransport) -> None:
    chunks = await collect(transport, request("Name three colours.", max_tokens=24, temperature=0.0))
    text_chunks = [c for c in chunks if c.text]
    final = chunks[-1]
    assert "".join(c.text for c in chunks).strip()
    assert final.usage is not None and final.finish_reason in {"stop", "length"}
    assert final.model_id == MODEL_ID
    assert final.usage.completion_tokens == len(text_chunks) <= 24
    # The chat template adds a default system prompt, so even a short question is a few dozen tokens.
    assert final.usage.prompt_tokens > 10
    longer = await collect(transport, request("Name three colours. " * 5, max_tokens=1))
    assert longer[-1].usage is not None and longer[-1].usage.prompt_tokens > final.usage.prompt_tokens


@pytest.mark.local_model
@needs_llama
async def test_schema_constrained_reply_validates(transport: LocalTransport) -> None:
    schema = Note.model_json_schema()
    fmt = {"type": "json_schema", "json_schema": {"name": "Note", "schema": schema}}
    chunks = await collect(
        transport,
        request("Write a note about fixing the login bug.", response_format=fmt, max_tokens=200, temperature=0.0),
    )
    text = "".join(c.text for c in chunks)
    assert chunks[-1].finish_reason == "stop", text
    note = Note.model_validate_json(text)
    assert set(json.loads(text)) == {"title", "tags", "urgent"}
    assert len(note.title) <= 40 and len(note.tags) <= 3


@pytest.mark.local_model
@needs_llama
async def test_tools_are_refused(transport: LocalTransport) -> None:
    tools = [{"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}]
    with pytest.raises(TransportError) as caught:
        await collect(transport, request("Read README.md", tools=tools))
    assert str(caught.value) == "model 'local' does not support tool calls"
    assert caught.value.retryable is False


@pytest.mark.local_model
@needs_llama
async def test_cancellation_frees_the_model_for_the_next_call(transport: LocalTransport) -> None:
    started = asyncio.Event()
    received: list[TransportChunk] = []

    async def consume() -> None:
        async for chunk in transport.stream(request("List numbers.", response_format=ENDLESS)):
            received.append(chunk)
            if len(received) >= 3:
                started.set()

    task = asyncio.create_task(consume())
    async with asyncio.timeout(60):
        await started.wait()
    task.cancel()
    # asyncio.wait neither raises nor cancels on its timeout, so a stream that never lets go fails here.
    done, _ = await asyncio.wait({task}, timeout=30)
    assert task in done, "the cancelled stream did not release the model"
    assert task.cancelled()
    async with asyncio.timeout(20):
        chunks = await collect(transport, request("Say hello.", max_tokens=8))
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= 1
    assert all(c.usage is None for c in received)


@pytest.mark.local_model
@needs_llama
async def test_timeout_around_the_stream_stops_it(transport: LocalTransport) -> None:
    transport.load()

    async def timed_out() -> None:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await collect(transport, request("List numbers.", response_format=ENDLESS))

    attempt = asyncio.create_task(timed_out())
    done, _ = await asyncio.wait({attempt}, timeout=30)
    assert attempt in done, "the timed-out stream did not release the model"
    attempt.result()
    async with asyncio.timeout(20):
        chunks = await collect(transport, request("Say hi.", max_tokens=4))
    assert chunks[-1].finish_reason in {"stop", "length"}


@pytest.mark.local_model
@needs_llama
async def test_a_call_queued_behind_another_can_be_cancelled_at_once(transport: LocalTransport) -> None:
    started = asyncio.Event()

    async def run_endless() -> None:
        async for _ in transport.stream(request("List numbers.", response_format=ENDLESS)):
            started.set()

    running = asyncio.create_task(run_endless())
    queued = asyncio.create_task(collect(transport, request("Say hi.", max_tokens=4)))
    try:
        async with asyncio.timeout(60):
            await started.wait()
        queued.cancel()
        # The queued call never took the model, so it must not wait for the endless one to finish.
        done, _ = await asyncio.wait({queued}, timeout=30)
        assert queued in done and queued.cancelled()
        assert not running.done()
    finally:
        running.cancel()
        await asyncio.wait({running}, timeout=30)
    assert running.cancelled()


@pytest.mark.local_model
@needs_llama
async def test_prompt_longer_than_the_context_is_a_clear_error(transport: LocalTransport) -> None:
    small = LOCAL.model_copy(update={"context_window": 256})
    long_prompt = "word " * 400
    req = TransportRequest(alias="local", model=small, messages=[{"role": "user", "content": long_prompt}])
    with pytest.raises(TransportError, match="context holds 256") as caught:
        await collect(transport, req)
    assert caught.value.retryable is False


@pytest.mark.local_model
@needs_llama
async def test_closed_transport_refuses_new_requests(transport: LocalTransport) -> None:
    await transport.aclose()
    with pytest.raises(TransportError, match="closed"):
        await collect(transport, request("hi", max_tokens=2))


@pytest.mark.local_model
@needs_llama
async def test_gateway_complete_with_local_alias_returns_parsed_schema() -> None:
    gateway = Gateway(load_settings(None, environ={}), EventBus(), environ={})
    call = CallRequest(
        messages=[Message(role="user", content="Write a note about fixing the login bug.")],
        alias="local",
        output_schema=Note,
        max_tokens=200,
        temperature=0.0,
    )
    try:
        result = await gateway.complete(call)
    finally:
        await gateway.aclose()
    assert isinstance(result.parsed, Note)
    assert Note.model_validate_json(result.text) == result.parsed
    assert (result.alias, result.model_id) == ("local", MODEL_ID)
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0
    assert result.cost_usd == 0.0
