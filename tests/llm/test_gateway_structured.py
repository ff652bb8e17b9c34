"""Structured output through the gateway: JSON-schema mode or instructions, fence-tolerant parsing, one repair
round that shows the model its errors, and a clear error after that."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, Field

from aetherflow.errors import StructuredOutputError
from aetherflow.events import CallFailed, CallFinished, Event, EventBus
from aetherflow.llm.gateway import Gateway
from aetherflow.llm.types import CallRequest, CallResult, Message, TextDelta, ToolSpec
from aetherflow.testing.server import Reply, ScriptedServer, ToolCallSpec
from aetherflow.testing.settings import scripted_environ, scripted_settings


class TaskPlan(BaseModel):
    """What the test asks the model for."""

    title: str
    steps: list[str] = Field(min_length=1)


VALID = {"title": "Add JWT", "steps": ["write tokens.py", "wire middleware"]}


def make_gateway(server: ScriptedServer, **overrides: Any) -> tuple[Gateway, list[Event]]:
    bus = EventBus()
    events: list[Event] = []
    bus.subscribe(events.append)
    return Gateway(scripted_settings(server, **overrides), bus, environ=scripted_environ()), events


def plan_request(**fields: Any) -> CallRequest:
    fields.setdefault("alias", "fast")
    messages = [Message(role="system", content="You plan work."), Message(role="user", content="Plan JWT auth.")]
    return CallRequest(messages=messages, output_schema=TaskPlan, **fields)


async def test_repair_round_fixes_an_invalid_reply(scripted_server: ScriptedServer) -> None:
    gateway, events = make_gateway(scripted_server)
    scripted_server.enqueue(
        Reply(json={"title": "Add JWT", "steps": []}, prompt_tokens=100, completion_tokens=10),
        Reply(json=VALID, prompt_tokens=150, completion_tokens=20),
    )

    result = await gateway.complete(plan_request())

    assert result.parsed == TaskPlan(**VALID)
    first, repair = (r.body for r in scripted_server.requests)
    assert first["response_format"]["type"] == "json_schema"
    assert first["response_format"]["json_schema"]["name"] == "TaskPlan"
    assert first["response_format"]["json_schema"]["schema"]["required"] == ["title", "steps"]
    assistant, correction = repair["messages"][-2:]
    assert assistant == {"role": "assistant", "content": '{"title": "Add JWT", "steps": []}'}
    assert correction["role"] == "user" and "Validation errors" in correction["content"]
    assert "steps" in correction["content"] and "at least 1 item" in correction["content"]
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (250, 30)
    assert result.cost_usd == pytest.approx((250 * 1.0 + 30 * 2.0) / 1e6)
    assert len([e for e in events if isinstance(e, CallFinished)]) == 1
    await gateway.aclose()


async def test_models_without_schema_mode_get_instructions_and_fences_are_tolerated(
    scripted_server: ScriptedServer,
) -> None:
    gateway, _ = make_gateway(scripted_server, models={"fast": {"capabilities": ["streaming"]}})
    scripted_server.enqueue(Reply(text='Here it is:\n```json\n{"title": "Add JWT", "steps": ["a"]}\n```'))

    result = await gateway.complete(plan_request())

    assert result.parsed == TaskPlan(title="Add JWT", steps=["a"])
    body = scripted_server.requests[0].body
    assert "response_format" not in body
    system = body["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("You plan work.")
    assert "JSON schema" in system["content"] and '"steps"' in system["content"]
    await gateway.aclose()


async def test_still_invalid_after_repair_is_a_clear_error(scripted_server: ScriptedServer) -> None:
    gateway, events = make_gateway(scripted_server)
    scripted_server.enqueue(Reply(text="I cannot do JSON."), Reply(text='{"title": 3}'))

    with pytest.raises(StructuredOutputError) as caught:
        await gateway.complete(plan_request())

    assert "TaskPlan" in caught.value.message and "steps" in caught.value.message
    assert scripted_server.request_count == 2
    [failed] = [e for e in events if isinstance(e, CallFailed)]
    assert failed.cost_usd > 0  # both rounds were billed
    await gateway.aclose()


async def test_a_streamed_call_shows_the_first_reply_and_returns_the_repaired_one(
    scripted_server: ScriptedServer,
) -> None:
    gateway, _ = make_gateway(scripted_server)
    scripted_server.enqueue(Reply(text="not json"), Reply(json=VALID))

    items = [item async for item in gateway.stream(plan_request())]

    assert "".join(i.text for i in items if isinstance(i, TextDelta)) == "not json"
    result = items[-1]
    assert isinstance(result, CallResult) and result.parsed == TaskPlan(**VALID)
    await gateway.aclose()


async def test_calls_to_offered_tools_are_not_parsed_as_the_schema(scripted_server: ScriptedServer) -> None:
    gateway, _ = make_gateway(scripted_server)
    scripted_server.enqueue(Reply(tool_calls=[ToolCallSpec(name="read_file", arguments={"path": "a.py"})]))
    read_file = ToolSpec(name="read_file", description="Read a file.", parameters={"type": "object"})

    result = await gateway.complete(plan_request(tools=[read_file]))

    assert result.parsed is None and result.tool_calls[0].name == "read_file"
    assert scripted_server.request_count == 1
    await gateway.aclose()


async def test_a_call_to_a_tool_nobody_offered_is_repaired_like_any_unstructured_reply(
    scripted_server: ScriptedServer,
) -> None:
    gateway, _ = make_gateway(scripted_server)
    scripted_server.enqueue(Reply(tool_calls=[ToolCallSpec(name="run_shell", arguments={"cmd": "id"})]),
                            Reply(tool_calls=[ToolCallSpec(name="run_shell", arguments={"cmd": "id"})]))

    with pytest.raises(StructuredOutputError) as refused:
        await gateway.complete(plan_request())

    assert "TaskPlan" in refused.value.message and scripted_server.request_count == 2
    await gateway.aclose()
