"""Structured-output modes (issue 11): how each mode asks a server for JSON, the fallback when a server refuses a
mode's request shape, the memory of that fallback, no retry of a refusal, and tolerant parsing of replies.

The refusal bodies below are what real servers send: `LLAMA_CPP_REFUSAL` was captured from llama-cpp-python's own
server (0.3.36) answering a `json_schema` response_format.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, Field

from aetherflow.errors import ProviderError
from aetherflow.events import CallRetry, Event, EventBus
from aetherflow.llm.gateway import Gateway
from aetherflow.llm.structured import json_candidates, parse_reply, request_for, without_trailing_commas
from aetherflow.llm.structured_modes import PROCESS_MODES
from aetherflow.llm.transport import refused_part
from aetherflow.llm.types import CallRequest, Message
from aetherflow.testing.script import RecordedRequest
from aetherflow.testing.server import Fault, Reply, ScriptedServer
from aetherflow.testing.settings import scripted_environ, scripted_settings
from aetherflow.testing.wire import error_body


class Verdict(BaseModel):
    """What the tests ask the model for."""

    ok: bool
    reason: str = Field(max_length=80)
    score: int = 0


VALID = {"ok": True, "reason": "tests pass", "score": 3}
# llama-cpp-python's server (0.3.36 with FastAPI 0.165) catches FastAPI's validation error and answers 500 with its
# text: this body was captured from the real server answering a json_schema response_format.
LLAMA_CPP_REFUSAL: dict[str, Any] = {
    "error": {
        "message": "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
                   "'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema', "
                   "'ctx': {'expected': \"'text' or 'json_object'\"}}\n\n  File \"/site-packages/llama_cpp/server/"
                   "app.py\", line 376, in create_chat_completion\n    POST /v1/chat/completions",
        "type": "internal_server_error", "param": None, "code": None,
    }
}
# OpenAI names the parameter it refused.
OPENAI_REFUSAL: dict[str, Any] = {
    "error": {"message": "Invalid parameter: 'response_format' of type 'json_object' takes no schema.",
              "type": "invalid_request_error", "param": "response_format", "code": None}
}


@pytest.fixture(autouse=True)
def fresh_modes() -> Iterator[None]:
    """Each test learns from scratch, and leaves nothing learned behind for other tests."""
    PROCESS_MODES.forget()
    yield
    PROCESS_MODES.forget()


def make_gateway(server: ScriptedServer, light: bool = False, **overrides: Any) -> tuple[Gateway, list[Event]]:
    bus = EventBus()
    events: list[Event] = []
    bus.subscribe(events.append)
    gateway = Gateway(scripted_settings(server, **overrides), bus, environ=scripted_environ(), light_transport=light)
    return gateway, events


def verdict_request() -> CallRequest:
    messages = [Message(role="system", content="You judge changes."), Message(role="user", content="Judge it.")]
    return CallRequest(alias="fast", messages=messages, output_schema=Verdict)


def format_type(request: RecordedRequest) -> str | None:
    response_format = request.body.get("response_format")
    return response_format.get("type") if isinstance(response_format, dict) else None


def llama_like(request: RecordedRequest) -> Reply | Fault:
    """A server that, like llama-cpp-python's, refuses json_schema and grammar-constrains json_object."""
    if format_type(request) == "json_schema":
        return Fault(status=500, body=LLAMA_CPP_REFUSAL)
    return Reply(json=VALID)


# ---- each mode's request ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("light", [False, True], ids=["litellm", "light"])
@pytest.mark.parametrize("mode", ["json_schema", "json_object_schema", "prompt"])
async def test_each_mode_asks_in_its_own_shape(scripted_server: ScriptedServer, mode: str, light: bool) -> None:
    gateway, _ = make_gateway(scripted_server, light, models={"fast": {"structured_output": mode}})
    scripted_server.enqueue(Reply(json=VALID))

    result = await gateway.complete(verdict_request())
    await gateway.aclose()

    assert result.parsed == Verdict(**VALID)
    [request] = scripted_server.completion_requests()
    system = request.body["messages"][0]["content"]
    schema = Verdict.model_json_schema()
    if mode == "json_schema":
        assert request.body["response_format"]["json_schema"]["schema"] == schema
    elif mode == "json_object_schema":
        assert request.body["response_format"] == {"type": "json_object", "schema": schema}
    else:
        assert "response_format" not in request.body and '"reason"' in system
    assert ("JSON schema" in system) == (mode == "prompt")


def test_the_mode_translation_lives_in_structured() -> None:
    messages = [Message(role="user", content="Judge it.")]

    assert request_for("json_schema", messages, Verdict)[1]["type"] == "json_schema"  # type: ignore[index]
    assert request_for("json_object_schema", messages, Verdict) == (
        messages, {"type": "json_object", "schema": Verdict.model_json_schema()}
    )
    prompted, response_format = request_for("prompt", messages, Verdict)
    assert response_format is None and prompted[0].role == "system" and len(prompted) == 2


# ---- fallback when a server refuses a mode ------------------------------------------------------------------------

@pytest.mark.parametrize("light", [False, True], ids=["litellm", "light"])
async def test_a_refused_json_schema_falls_back_at_once_to_json_object_with_the_schema(
    scripted_server: ScriptedServer, light: bool
) -> None:
    gateway, events = make_gateway(scripted_server, light, gateway={"max_retries": 2, "backoff_initial_s": 5.0})
    scripted_server.script = llama_like

    result = await gateway.complete(verdict_request())
    await gateway.aclose()

    assert result.parsed == Verdict(**VALID) and result.alias == "fast" and result.fallbacks == []
    assert [format_type(r) for r in scripted_server.completion_requests()] == ["json_schema", "json_object"]
    [switch] = [e for e in events if isinstance(e, CallRetry)]
    assert switch.wait_s == 0.0 and "json_object_schema" in switch.error
    assert result.retries == 1
    assert PROCESS_MODES.learned() == {"fast": "json_object_schema"}


async def test_the_working_mode_is_remembered_for_later_calls_and_gateways(scripted_server: ScriptedServer) -> None:
    scripted_server.script = llama_like
    first, _ = make_gateway(scripted_server)
    await first.complete(verdict_request())
    await first.complete(verdict_request())
    await first.aclose()
    second, events = make_gateway(scripted_server)
    result = await second.complete(verdict_request())
    await second.aclose()

    assert [format_type(r) for r in scripted_server.completion_requests()] == [
        "json_schema", "json_object", "json_object", "json_object"
    ]
    assert result.retries == 0 and not [e for e in events if isinstance(e, CallRetry)]


async def test_the_memory_is_per_server(scripted_server: ScriptedServer) -> None:
    scripted_server.script = llama_like
    gateway, _ = make_gateway(scripted_server)
    await gateway.complete(verdict_request())
    await gateway.aclose()

    with ScriptedServer() as other:
        other.enqueue(Reply(json=VALID))
        gateway, _ = make_gateway(other)
        await gateway.complete(verdict_request())
        await gateway.aclose()
        assert [format_type(r) for r in other.completion_requests()] == ["json_schema"]


async def test_a_server_refusing_both_schema_modes_gets_the_schema_in_the_prompt(
    scripted_server: ScriptedServer,
) -> None:
    gateway, events = make_gateway(scripted_server)
    scripted_server.enqueue(Fault(status=500, body=LLAMA_CPP_REFUSAL), Fault(status=400, body=OPENAI_REFUSAL),
                            Reply(text=f"Sure:\n```json\n{Verdict(**VALID).model_dump_json()}\n```"))

    result = await gateway.complete(verdict_request())
    await gateway.aclose()

    assert result.parsed == Verdict(**VALID)
    requests = scripted_server.completion_requests()
    assert [format_type(r) for r in requests] == ["json_schema", "json_object", None]
    assert "JSON schema" in requests[2].body["messages"][0]["content"]
    assert [e.attempt for e in events if isinstance(e, CallRetry)] == [1, 2]
    assert PROCESS_MODES.learned() == {"fast": "prompt"}


async def test_a_refusal_does_not_count_against_the_circuit_breaker(scripted_server: ScriptedServer) -> None:
    gateway, _ = make_gateway(scripted_server, gateway={"breaker_failures": 1})
    scripted_server.script = llama_like

    result = await gateway.complete(verdict_request())

    assert result.parsed == Verdict(**VALID)
    assert gateway.breakers.state("fast") == "closed"
    await gateway.aclose()


# ---- refusals are not retried; plain failures still are ------------------------------------------------------------

@pytest.mark.parametrize("light", [False, True], ids=["litellm", "light"])
async def test_a_refusal_of_another_field_is_not_retried_and_changes_no_mode(
    scripted_server: ScriptedServer, light: bool
) -> None:
    refusal = {"error": {**LLAMA_CPP_REFUSAL["error"], "message": LLAMA_CPP_REFUSAL["error"]["message"].replace(
        "'response_format', 'type'", "'messages', 0, 'role'")}}
    gateway, events = make_gateway(scripted_server, light, gateway={"max_retries": 2})
    scripted_server.script = lambda request: Fault(status=500, body=refusal)

    with pytest.raises(ProviderError):
        await gateway.complete(CallRequest(alias="fast", messages=[Message(role="user", content="hi")]))
    await gateway.aclose()

    assert len(scripted_server.completion_requests()) == 1
    assert not [e for e in events if isinstance(e, CallRetry)]
    assert PROCESS_MODES.learned() == {}


async def test_a_refused_last_mode_is_not_retried(scripted_server: ScriptedServer) -> None:
    gateway, _ = make_gateway(scripted_server, gateway={"max_retries": 2},
                              models={"fast": {"structured_output": "json_object_schema"}})
    scripted_server.script = lambda request: (
        Fault(status=422, body={"detail": [{"type": "extra_forbidden", "loc": ["body", "response_format", "schema"],
                                            "msg": "Extra inputs are not permitted", "input": {}}]})
        if format_type(request) else Fault(status=422, body={"detail": [
            {"type": "missing", "loc": ["body", "messages"], "msg": "Field required", "input": {}}]})
    )

    with pytest.raises(ProviderError):
        await gateway.complete(verdict_request())
    await gateway.aclose()

    assert [format_type(r) for r in scripted_server.completion_requests()] == ["json_object", None]


async def test_a_plain_500_is_still_retried_and_teaches_nothing(scripted_server: ScriptedServer) -> None:
    gateway, events = make_gateway(scripted_server, gateway={"max_retries": 2})
    scripted_server.enqueue(Fault(status=500, message="model crashed"), Reply(json=VALID))

    result = await gateway.complete(verdict_request())
    await gateway.aclose()

    assert result.parsed == Verdict(**VALID) and result.retries == 1
    assert [format_type(r) for r in scripted_server.completion_requests()] == ["json_schema", "json_schema"]
    assert PROCESS_MODES.learned() == {}
    assert [e.attempt for e in events if isinstance(e, CallRetry)] == [1]


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (500, LLAMA_CPP_REFUSAL, "response_format"),
        (400, OPENAI_REFUSAL, "response_format"),
        (422, {"detail": [{"type": "literal_error", "loc": ["body", "response_format", "type"], "msg": "x"}]},
         "response_format"),
        (400, {"error": {"message": "too long", "type": "invalid_request_error", "param": "messages"}}, "other"),
        (500, error_body(500, "scripted server: injected HTTP 500"), None),
        (500, {"error": {"message": "[{'type': 'x', 'loc': ('body', 'response_format')}] but prose", "type": "e"}},
         None),
        (500, {"error": {"message": "{'loc': ('body', 'response_format')}", "type": "no type field"}}, None),
        (400, error_body(400, "scripted chaos: invalid request"), None),
        (500, {"error": {"message": "[" * 5000, "type": "internal_server_error"}}, None),
        (200, LLAMA_CPP_REFUSAL, None),
        (None, LLAMA_CPP_REFUSAL, None),
        (500, ["not", "a", "mapping"], None),
    ],
)
def test_a_refusal_is_read_from_the_body_structure(status: int | None, body: object, expected: str | None) -> None:
    assert refused_part(status, body) == expected


def test_older_fastapi_validation_text_a_list_literal_is_read_too() -> None:
    message = ("[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
               "'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema'}]")

    assert refused_part(500, {"error": {"message": message, "type": "internal_server_error"}}) == "response_format"


# ---- tolerant parsing ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "reply",
    [
        '{"ok": true, "reason": "tests pass", "score": 3}',
        '```json\n{"ok": true, "reason": "tests pass", "score": 3}\n```',
        'Here is my verdict:\n```json\n{"ok": true, "reason": "tests pass", "score": 3}\n```\nAnything else?',
        'Verdict: {"ok": true, "reason": "tests pass", "score": 3} -- done.',
        '{"ok": true, "reason": "tests pass", "score": 3,}',
        '```\n{\n  "ok": true,\n  "reason": "tests pass",\n  "score": "3",\n}\n```',
        'First a draft {"ok": "maybe"} then the answer {"ok": true, "reason": "tests pass", "score": 3}',
        '{"ok": true, "reason": "tests pass", "score": 3}\n{"ok": false}',
    ],
    ids=["plain", "fenced", "fence-with-prose", "inline-prose", "trailing-comma", "fenced-comma-coerced",
         "second-object", "two-objects"],
)
def test_wrapped_replies_parse(reply: str) -> None:
    assert parse_reply(reply, Verdict) == (Verdict(**VALID), "")


def test_braces_and_commas_inside_strings_are_left_alone() -> None:
    reply = 'Note {this}: {"ok": true, "reason": "a }, ] and \\" {x,}", "score": 1,}'

    parsed, errors = parse_reply(reply, Verdict)

    assert errors == "" and parsed == Verdict(ok=True, reason='a }, ] and " {x,}', score=1)
    assert without_trailing_commas('{"a": "x,}", "b": [1, 2, ], }') == '{"a": "x,}", "b": [1, 2 ] }'


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("", "the reply is empty"),
        ('{"ok": true, "reason": "tests pa', "Invalid JSON"),
        ('{"ok": "perhaps", "reason": "x"}', "- ok:"),
        ('Sure! ```json\n{"ok": true, "reason": "' + "x" * 200 + '"}\n```', "- reason:"),
        ("[" * 100_000, "Invalid JSON"),
        ("{" * 100_000 + "}" * 100_000, "Invalid JSON"),
        ('{"reason": "x"} and {"ok": 7}', "- ok:"),
    ],
    ids=["empty", "cut-off", "wrong-type", "too-long", "deep-brackets", "deep-braces", "two-half-objects"],
)
def test_half_valid_replies_give_errors_for_the_repair_round_never_a_crash(reply: str, expected: str) -> None:
    parsed, errors = parse_reply(reply, Verdict)

    assert parsed is None and expected in errors


def test_candidates_are_bounded() -> None:
    assert len(json_candidates("{} " * 1000)) <= 12
