"""Gateway calls end to end through the real LiteLLM transport against the scripted server: streaming, usage and
cost, events, tool calls, agent parameters, prompt-cache marks, the response cache and secret redaction."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aetherflow.events import CallFinished, CallStarted, CallTextDelta, CallToolCall, Event, EventBus
from aetherflow.llm.gateway import Gateway
from aetherflow.llm.types import CallRequest, CallResult, Message, TextDelta, ToolSpec
from aetherflow.testing.server import Reply, ScriptedServer, ToolCallSpec
from aetherflow.testing.settings import scripted_environ, scripted_settings

AWS_KEY = "AKIAZ4X7QW3ERT5YU2PL"
ANTHROPIC_KEY = "sk-ant-api03-" + "Xq7vB2nK9mL4pR8sT1wY6zA3cD5fG0hJ" * 2 + "AbCdEfGhIjKlMn-QrStUvAA"
PRIVATE_KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEA1c7+9z5Pad7OejecsQ0bu3aumhpdz7nKHPXszjv4mDxJ5oQb\n"
    "k8vJH2lQwErTyUiOpAsDfGhJkLzXcVbNm1234567890abcdefghijklmnopqrstu\n"
    "-----END RSA PRIVATE KEY-----"
)


def make_gateway(
    server: ScriptedServer, tmp_path: Path, *, with_cache: bool = False, environ: dict[str, str] | None = None,
    **overrides: Any,
) -> tuple[Gateway, list[Event]]:
    settings = scripted_settings(server, **overrides)
    bus = EventBus()
    events: list[Event] = []
    bus.subscribe(events.append)
    gateway = Gateway(
        settings, bus, environ=environ if environ is not None else scripted_environ(),
        cache_dir=tmp_path / "cache" if with_cache else None,
    )
    return gateway, events


def ask(text: str = "say hello", **fields: Any) -> CallRequest:
    fields.setdefault("alias", "fast")
    return CallRequest(messages=[Message(role="user", content=text)], **fields)


async def collect(gateway: Gateway, request: CallRequest) -> tuple[list[TextDelta], CallResult]:
    items = [item async for item in gateway.stream(request)]
    *deltas, result = items
    assert isinstance(result, CallResult)
    assert all(isinstance(d, TextDelta) for d in deltas)
    return deltas, result  # type: ignore[return-value]


def of_type(events: list[Event], kind: type[Event]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


async def test_streams_text_then_result_with_usage_and_cost(scripted_server: ScriptedServer, tmp_path: Path) -> None:
    gateway, events = make_gateway(scripted_server, tmp_path)
    scripted_server.enqueue(Reply(text="hello from the model", prompt_tokens=1000, completion_tokens=500,
                                  cached_tokens=400))

    deltas, result = await collect(gateway, ask())

    assert [d.text for d in deltas] == ["hello ", "from ", "the ", "model"]
    assert result.text == "hello from the model"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (1000, 500)
    assert result.usage.cached_read_tokens == 400
    # "fast" costs $1/M input, $2/M output; cached reads fall back to the input price.
    assert result.cost_usd == pytest.approx((1000 * 1.0 + 500 * 2.0) / 1e6)
    assert (result.alias, result.model_id, result.finish_reason) == ("fast", "openai/fast", "stop")
    assert result.ttft_s is not None and 0 <= result.ttft_s <= result.latency_s
    assert gateway.budget.spent_usd == pytest.approx(result.cost_usd)
    assert gateway.budget.reserved_usd == 0
    body = scripted_server.requests[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    [started] = of_type(events, CallStarted)
    [finished] = of_type(events, CallFinished)
    assert started.call_id == finished.call_id == result.call_id
    assert started.reserved_usd > result.cost_usd
    assert finished.cost_usd == result.cost_usd and finished.usage == result.usage
    await gateway.aclose()


async def test_complete_returns_the_same_result(scripted_server: ScriptedServer, tmp_path: Path) -> None:
    gateway, _ = make_gateway(scripted_server, tmp_path)
    scripted_server.enqueue(Reply(text="whole answer", prompt_tokens=10, completion_tokens=2))

    result = await gateway.complete(ask(run_id="run-1", task_id="t-1"))

    assert result.text == "whole answer"
    assert result.usage.completion_tokens == 2
    await gateway.aclose()


async def test_text_events_are_coalesced_and_flushed(scripted_server: ScriptedServer, tmp_path: Path) -> None:
    gateway, events = make_gateway(scripted_server, tmp_path, gateway={"delta_interval_ms": 60_000})
    text = "one two three four five six seven"
    scripted_server.enqueue(Reply(text=text))

    deltas, result = await collect(gateway, ask(run_id="r", task_id="t"))

    text_events = of_type(events, CallTextDelta)
    assert len(deltas) == 7
    # The first piece goes out at once; the rest waits for the interval and is flushed before CallFinished.
    assert [e.text for e in text_events] == ["one ", "two three four five six seven"]
    assert all(e.run_id == "r" and e.task_id == "t" and e.call_id == result.call_id for e in text_events)
    assert events.index(text_events[-1]) < events.index(of_type(events, CallFinished)[0])
    await gateway.aclose()


async def test_tool_calls_are_assembled_and_published(scripted_server: ScriptedServer, tmp_path: Path) -> None:
    gateway, events = make_gateway(scripted_server, tmp_path)
    scripted_server.enqueue(Reply(tool_calls=[
        ToolCallSpec(name="read_file", arguments={"path": "pkg/a.py"}),
        ToolCallSpec(name="grep", arguments={"pattern": "def main"}),
    ]))
    tool = ToolSpec(name="read_file", description="Read a file",
                    parameters={"type": "object", "properties": {"path": {"type": "string"}}})

    result = await gateway.complete(ask(tools=[tool]))

    assert [c.name for c in result.tool_calls] == ["read_file", "grep"]
    assert result.tool_calls[0].parsed_arguments() == {"path": "pkg/a.py"}
    assert result.tool_calls[1].parsed_arguments() == {"pattern": "def main"}
    assert result.finish_reason == "tool_calls"
    assert [(e.name, json.loads(e.arguments)) for e in of_type(events, CallToolCall)] == [
        ("read_file", {"path": "pkg/a.py"}), ("grep", {"pattern": "def main"})]
    assert scripted_server.requests[0].body["tools"][0]["function"]["name"] == "read_file"
    await gateway.aclose()


async def test_agent_parameters_apply_unless_the_request_sets_them(
    scripted_server: ScriptedServer, tmp_path: Path
) -> None:
    gateway, events = make_gateway(scripted_server, tmp_path)
    scripted_server.script = lambda request: Reply(text="ok")
    coder = gateway.settings.agents["coder"]

    await gateway.complete(CallRequest(messages=[Message(role="user", content="x")], agent="coder"))
    await gateway.complete(CallRequest(messages=[Message(role="user", content="y")], agent="coder",
                                       temperature=0.9, max_tokens=77))

    first, second = (r.body for r in scripted_server.requests)
    assert (first["model"], first["temperature"], first["max_tokens"]) == ("fast", coder.temperature,
                                                                            coder.max_output_tokens)
    assert (second["temperature"], second["max_tokens"]) == (0.9, 77)
    assert {e.agent for e in of_type(events, CallFinished)} == {"coder"}
    await gateway.aclose()


async def test_prompt_cache_marks_the_stable_prefix(scripted_server: ScriptedServer, tmp_path: Path) -> None:
    capabilities = ["tools", "json_schema", "streaming", "prompt_cache"]
    gateway, _ = make_gateway(scripted_server, tmp_path, models={"fast": {"capabilities": capabilities}})
    scripted_server.enqueue(Reply(text="ok"), Reply(text="ok"))
    messages = [
        Message(role="system", content="You are a careful coder.\n<repository context>", cache_prefix=True),
        Message(role="user", content="rename foo"),
    ]

    await gateway.complete(CallRequest(messages=messages, alias="fast"))
    await gateway.complete(CallRequest(messages=messages, alias="strong"))  # no prompt_cache capability

    marked, plain = (r.body["messages"] for r in scripted_server.requests)
    assert marked[0]["content"] == [{"type": "text", "text": "You are a careful coder.\n<repository context>",
                                     "cache_control": {"type": "ephemeral"}}]
    assert marked[1]["content"] == "rename foo"
    assert plain[0]["content"] == "You are a careful coder.\n<repository context>"
    await gateway.aclose()


async def test_cache_hit_is_free_and_replays_the_stream(scripted_server: ScriptedServer, tmp_path: Path) -> None:
    gateway, events = make_gateway(scripted_server, tmp_path, with_cache=True)
    scripted_server.enqueue(Reply(text="cached words come back", prompt_tokens=50, completion_tokens=4))

    first_deltas, first = await collect(gateway, ask("what is cached?"))
    second_deltas, second = await collect(gateway, ask("what is cached?"))
    third = await gateway.complete(ask("what is cached?"))

    assert scripted_server.request_count == 1
    assert first.cost_usd > 0 and not first.cache_hit
    assert second.cache_hit and third.cache_hit
    assert second.cost_usd == third.cost_usd == 0.0
    assert second.text == third.text == first.text == "cached words come back"
    assert "".join(d.text for d in second_deltas) == "".join(d.text for d in first_deltas)
    assert len(second_deltas) > 1
    assert [e.cache_hit for e in of_type(events, CallFinished)] == [False, True, True]
    assert gateway.budget.spent_usd == pytest.approx(first.cost_usd)
    await gateway.aclose()


async def test_cache_key_covers_parameters_and_can_be_bypassed(
    scripted_server: ScriptedServer, tmp_path: Path
) -> None:
    gateway, _ = make_gateway(scripted_server, tmp_path, with_cache=True)
    scripted_server.script = lambda request: Reply(text=f"answer {len(scripted_server.requests)}")

    await gateway.complete(ask("q"))
    await gateway.complete(ask("q", temperature=0.5))
    await gateway.complete(ask("q", max_tokens=100))
    await gateway.complete(ask("q", alias="strong"))
    bypass = await gateway.complete(ask("q", use_cache=False))
    hit = await gateway.complete(ask("q"))

    assert scripted_server.request_count == 5
    assert not bypass.cache_hit and hit.cache_hit and hit.text == "answer 1"
    await gateway.aclose()


async def test_cache_disabled_in_settings_always_calls(scripted_server: ScriptedServer, tmp_path: Path) -> None:
    gateway, _ = make_gateway(scripted_server, tmp_path, with_cache=True, **{"cache": {"enabled": False}})
    scripted_server.script = lambda request: Reply(text="fresh")

    await gateway.complete(ask("q"))
    result = await gateway.complete(ask("q"))

    assert scripted_server.request_count == 2 and not result.cache_hit
    await gateway.aclose()


async def test_planted_secrets_never_reach_the_server(scripted_server: ScriptedServer, tmp_path: Path) -> None:
    gateway, events = make_gateway(scripted_server, tmp_path)
    scripted_server.enqueue(Reply(text="noted"))
    request = CallRequest(alias="fast", messages=[
        Message(role="system", content=f"Deploy config:\naws_access_key_id = {AWS_KEY}\n"),
        Message(role="user", content=f"Why does this fail?\n{PRIVATE_KEY}\nANTHROPIC_API_KEY={ANTHROPIC_KEY}"),
    ])

    result = await gateway.complete(request)

    raw = scripted_server.requests[0].raw_body.decode()
    for secret in (AWS_KEY, ANTHROPIC_KEY, "MIIEowIBAAKCAQEA1c7", "BEGIN RSA PRIVATE KEY"):
        assert secret not in raw
    assert "Why does this fail?" in raw
    assert result.redactions >= 3
    assert of_type(events, CallStarted)[0].redactions == result.redactions
    assert of_type(events, CallFinished)[0].redactions == result.redactions
    await gateway.aclose()


async def test_configured_key_values_are_redacted_and_redaction_can_be_off(
    scripted_server: ScriptedServer, tmp_path: Path
) -> None:
    environ = scripted_environ(SCRIPTED_API_KEY="plain-looking-value-42")
    gateway, _ = make_gateway(scripted_server, tmp_path, environ=environ)
    scripted_server.script = lambda request: Reply(text="ok")

    await gateway.complete(ask("my key is plain-looking-value-42, is that fine?"))
    off, _ = make_gateway(scripted_server, tmp_path, environ=environ, privacy={"redact_secrets": False})
    result = await off.complete(ask("my key is plain-looking-value-42, is that fine?"))

    redacted, sent_as_is = (r.raw_body.decode() for r in scripted_server.requests)
    assert "plain-looking-value-42" not in redacted
    assert "plain-looking-value-42" in sent_as_is and result.redactions == 0
    await gateway.aclose()
    await off.aclose()
