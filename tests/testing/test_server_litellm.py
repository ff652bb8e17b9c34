"""The scripted server as LiteLLM's `openai/` route sees it: the path every gateway test and benchmark takes."""

from __future__ import annotations

import time
from types import ModuleType
from typing import Any

import pytest

from aetherflow.llm._litellm import import_litellm
from aetherflow.testing.server import Fault, Reply, ScriptedServer, ToolCallSpec
from aetherflow.testing.settings import SCRIPTED_KEY, scripted_settings

READ_FILE_TOOL = {
    "type": "function",
    "function": {
        "name": "read_file",
        "description": "Read a file",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    },
}


@pytest.fixture(scope="module")
def litellm() -> ModuleType:
    return import_litellm()


def mid_stream_error() -> type[Exception]:
    """LiteLLM wraps a failure after the first chunk in this (a 503 ServiceUnavailableError subclass)."""
    import_litellm()
    from litellm.exceptions import MidStreamFallbackError

    return MidStreamFallbackError


async def complete(litellm: ModuleType, server: ScriptedServer, timeout: float = 5.0, **kwargs: Any) -> Any:
    """One call as the gateway makes it: SDK retries off, an explicit timeout."""
    kwargs.setdefault("messages", [{"role": "user", "content": "please say hello"}])
    return await litellm.acompletion(
        model="openai/fast", api_base=server.base_url, api_key=SCRIPTED_KEY, max_retries=0, timeout=timeout, **kwargs
    )


async def test_streamed_text_and_usage(litellm: ModuleType, scripted_server: ScriptedServer) -> None:
    scripted_server.enqueue(Reply(text="hello from the server", prompt_tokens=40, completion_tokens=4,
                                  cached_tokens=32))

    stream = await complete(litellm, scripted_server, stream=True, stream_options={"include_usage": True})
    chunks = [chunk async for chunk in stream]

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "hello from the server"
    usage = next(c.usage for c in reversed(chunks) if getattr(c, "usage", None))
    assert (usage.prompt_tokens, usage.completion_tokens) == (40, 4)
    assert usage.prompt_tokens_details.cached_tokens == 32
    assert scripted_server.requests[0].body["stream_options"] == {"include_usage": True}
    assert scripted_server.requests[0].headers["authorization"] == f"Bearer {SCRIPTED_KEY}"


async def test_whole_reply_text_and_usage(litellm: ModuleType, scripted_server: ScriptedServer) -> None:
    scripted_server.enqueue(Reply(text="hi", prompt_tokens=12, completion_tokens=3))

    response = await complete(litellm, scripted_server)

    assert response.choices[0].message.content == "hi"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (12, 3)


async def test_tool_calls_whole_and_streamed(litellm: ModuleType, scripted_server: ScriptedServer) -> None:
    call = ToolCallSpec(name="read_file", arguments={"path": "pkg/module_a.py"})
    scripted_server.enqueue(Reply(tool_calls=[call]), Reply(text="let me look", tool_calls=[call]))

    whole = await complete(litellm, scripted_server, tools=[READ_FILE_TOOL])
    stream = await complete(litellm, scripted_server, tools=[READ_FILE_TOOL], stream=True)
    built = litellm.stream_chunk_builder([chunk async for chunk in stream])

    for response in (whole, built):
        [tool_call] = response.choices[0].message.tool_calls
        assert tool_call.function.name == "read_file"
        assert tool_call.function.arguments == '{"path": "pkg/module_a.py"}'
        assert response.choices[0].finish_reason == "tool_calls"
    assert built.choices[0].message.content == "let me look"
    assert scripted_server.requests[0].body["tools"][0]["function"]["name"] == "read_file"


async def test_429_reaches_litellm_with_its_retry_after(litellm: ModuleType, scripted_server: ScriptedServer) -> None:
    scripted_server.enqueue(Fault(status=429, retry_after=1.5))

    with pytest.raises(litellm.RateLimitError) as caught:
        await complete(litellm, scripted_server)

    assert caught.value.status_code == 429
    assert caught.value.litellm_response_headers["retry-after"] == "1.5"
    assert scripted_server.request_count == 1


async def test_500_and_empty_queue_are_server_errors(litellm: ModuleType, scripted_server: ScriptedServer) -> None:
    scripted_server.enqueue(Fault(status=500))

    with pytest.raises(litellm.InternalServerError, match="injected HTTP 500"):
        await complete(litellm, scripted_server)
    with pytest.raises(litellm.InternalServerError, match="no reply queued"):
        await complete(litellm, scripted_server)


async def test_hang_is_bounded_by_the_timeout(litellm: ModuleType, scripted_server: ScriptedServer) -> None:
    scripted_server.enqueue(Fault(hang=True))

    start = time.monotonic()
    with pytest.raises(litellm.Timeout):
        await complete(litellm, scripted_server, timeout=0.5)

    assert time.monotonic() - start < 3.0


async def test_truncated_stream_raises_after_the_partial_text(
    litellm: ModuleType, scripted_server: ScriptedServer
) -> None:
    scripted_server.enqueue(Reply(text="one two three four", truncate_after_chunks=2))
    received: list[str] = []

    stream = await complete(litellm, scripted_server, stream=True)
    with pytest.raises(mid_stream_error()) as caught:
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")

    assert "".join(received) == "one two "
    assert isinstance(caught.value.original_exception, litellm.APIConnectionError)


async def test_malformed_replies_raise(litellm: ModuleType, scripted_server: ScriptedServer) -> None:
    scripted_server.enqueue(Fault(malformed=True), Fault(malformed=True))

    with pytest.raises(litellm.InternalServerError, match="Unterminated string"):
        await complete(litellm, scripted_server)
    stream = await complete(litellm, scripted_server, stream=True)
    with pytest.raises(mid_stream_error(), match="Unterminated string"):
        async for _ in stream:
            pass


async def test_script_answers_from_the_request(litellm: ModuleType, scripted_server: ScriptedServer) -> None:
    scripted_server.script = lambda request: Reply(text=request.body["model"])

    fast = await complete(litellm, scripted_server)
    strong = await litellm.acompletion(
        model="openai/strong", api_base=scripted_server.base_url, api_key=SCRIPTED_KEY, max_retries=0, timeout=5,
        messages=[{"role": "user", "content": "x"}],
    )

    assert (fast.choices[0].message.content, strong.choices[0].message.content) == ("fast", "strong")


def test_scripted_settings_point_every_agent_at_the_server(scripted_server: ScriptedServer) -> None:
    settings = scripted_settings(scripted_server, budget={"per_run_usd": 0.5}, gateway={"max_retries": 1})

    assert settings.models["fast"].api_base == scripted_server.base_url
    assert settings.models["fast"].model == "openai/fast"
    assert settings.models["strong"].price is not None and settings.models["strong"].price.output == 15.0
    assert settings.agents["coder"].model == "fast" and settings.agents["coder"].fallbacks == ["strong"]
    assert {a.model for a in settings.agents.values()} <= {"fast", "strong"}
    assert "local" in settings.models
    assert settings.budget.per_run_usd == 0.5
    assert settings.gateway.max_retries == 1
    assert settings.gateway.timeout_s == 10.0
    assert settings.sources[-1] == "command line"
