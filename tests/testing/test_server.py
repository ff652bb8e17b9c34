"""The scripted server at the HTTP level, read with httpx: shapes, streaming, faults, ordering, stop."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from aetherflow.testing.server import Fault, RecordedRequest, Reply, ScriptedServer, ToolCallSpec

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "say hello to the world"}]


def chat(server: ScriptedServer, timeout: float = 5.0, **body: Any) -> httpx.Response:
    payload = {"model": "fast", "messages": MESSAGES, **body}
    headers = {"Authorization": "Bearer test-key"}
    return httpx.post(f"{server.base_url}/chat/completions", json=payload, headers=headers, timeout=timeout)


def stream_events(server: ScriptedServer, timeout: float = 5.0, **body: Any) -> list[Any]:
    """The decoded `data:` payloads of a streamed reply ('[DONE]' kept as a string)."""
    payload = {"model": "fast", "messages": MESSAGES, "stream": True, **body}
    events: list[Any] = []
    with httpx.stream("POST", f"{server.base_url}/chat/completions", json=payload, timeout=timeout) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                data = line[len("data: ") :]
                events.append(data if data == "[DONE]" else json.loads(data))
    return events


def wait_until(condition: Callable[[], bool], limit_s: float = 5.0) -> None:
    """Poll a condition the test cannot be notified of (a request reaching the server's thread)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def streamed_text(events: list[Any]) -> str:
    return "".join(
        e["choices"][0]["delta"].get("content") or "" for e in events if isinstance(e, dict) and e["choices"]
    )


def test_non_streamed_reply_is_a_chat_completion_with_default_usage(scripted_server: ScriptedServer) -> None:
    scripted_server.enqueue(Reply(text="hello big world"))

    response = chat(scripted_server)

    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "fast"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "hello big world", "refusal": None}
    assert body["choices"][0]["finish_reason"] == "stop"
    chars = len("be brief") + len("say hello to the world")
    assert body["usage"]["prompt_tokens"] == chars // 4
    assert body["usage"]["completion_tokens"] == 3
    assert body["usage"]["total_tokens"] == chars // 4 + 3
    assert body["usage"]["prompt_tokens_details"]["cached_tokens"] == 0


def test_requests_are_recorded_with_lowercase_headers_and_parsed_body(scripted_server: ScriptedServer) -> None:
    scripted_server.enqueue(Reply(text="ok"))
    before = time.monotonic()

    chat(scripted_server, temperature=0.5)

    [request] = scripted_server.requests
    assert isinstance(request, RecordedRequest)
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == "Bearer test-key"
    assert request.body["temperature"] == 0.5
    assert request.body["messages"] == MESSAGES
    assert before <= request.ts <= time.monotonic()
    assert scripted_server.request_count == 1


def test_scripted_usage_figures_are_sent_as_given(scripted_server: ScriptedServer) -> None:
    scripted_server.enqueue(Reply(text="hi", prompt_tokens=12, completion_tokens=3, cached_tokens=10))

    usage = chat(scripted_server).json()["usage"]

    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (12, 3, 15)
    assert usage["prompt_tokens_details"]["cached_tokens"] == 10


def test_stream_sends_words_that_join_to_the_text_then_usage_and_done(scripted_server: ScriptedServer) -> None:
    text = "  streaming keeps\tevery space  "
    scripted_server.enqueue(Reply(text=text, prompt_tokens=7))

    events = stream_events(scripted_server, stream_options={"include_usage": True})

    assert events[-1] == "[DONE]"
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(e["object"] == "chat.completion.chunk" for e in events[:-1])
    assert streamed_text(events) == text
    words = [e["choices"][0]["delta"]["content"] for e in events[1:-3]]
    assert words == ["  streaming ", "keeps\t", "every ", "space  "]
    assert events[-3]["choices"][0]["finish_reason"] == "stop"
    usage_chunk = events[-2]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["prompt_tokens"] == 7
    assert usage_chunk["usage"]["completion_tokens"] == 4


def test_stream_without_include_usage_sends_no_usage_chunk(scripted_server: ScriptedServer) -> None:
    scripted_server.enqueue(Reply(text="a b"))

    events = stream_events(scripted_server)

    assert events[-1] == "[DONE]"
    assert all(e["choices"] for e in events[:-1])
    assert all("usage" not in e for e in events[:-1])


def test_tool_calls_stream_id_and_name_first_then_argument_pieces(scripted_server: ScriptedServer) -> None:
    arguments = {"path": "src/some/long/module.py", "start": 1}
    scripted_server.enqueue(Reply(tool_calls=[ToolCallSpec(name="read_file", arguments=arguments)]))

    events = stream_events(scripted_server)

    deltas = [e["choices"][0]["delta"] for e in events[1:-1] if e["choices"][0]["delta"].get("tool_calls")]
    head = deltas[0]["tool_calls"][0]
    assert head["id"] == "call_1_0" and head["function"]["name"] == "read_file"
    pieces = [d["tool_calls"][0]["function"]["arguments"] for d in deltas[1:]]
    assert len(pieces) > 2
    assert all("id" not in d["tool_calls"][0] for d in deltas[1:])
    assert json.loads("".join(pieces)) == arguments
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_tool_calls_in_a_whole_reply(scripted_server: ScriptedServer) -> None:
    scripted_server.enqueue(
        Reply(tool_calls=[ToolCallSpec(name="grep", arguments={"pattern": "x"}, id="call_given"),
                          ToolCallSpec(name="list_dir", arguments="{not json")])
    )

    choice = chat(scripted_server).json()["choices"][0]

    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    calls = choice["message"]["tool_calls"]
    assert [(c["id"], c["function"]["name"]) for c in calls] == [("call_given", "grep"), ("call_1_1", "list_dir")]
    assert json.loads(calls[0]["function"]["arguments"]) == {"pattern": "x"}
    assert calls[1]["function"]["arguments"] == "{not json"


def test_json_reply_content_is_the_serialised_value(scripted_server: ScriptedServer) -> None:
    scripted_server.enqueue(Reply(json={"a": 1, "b": [True, None]}), Reply(json={"a": 2}))

    assert json.loads(chat(scripted_server).json()["choices"][0]["message"]["content"]) == {"a": 1, "b": [True, None]}
    assert json.loads(streamed_text(stream_events(scripted_server))) == {"a": 2}


def test_model_and_finish_reason_overrides_are_echoed(scripted_server: ScriptedServer) -> None:
    scripted_server.enqueue(Reply(text="cut", model="other-model", finish_reason="length"))

    body = chat(scripted_server).json()

    assert body["model"] == "other-model"
    assert body["choices"][0]["finish_reason"] == "length"


def test_queue_is_consumed_in_order_then_the_script_answers(scripted_server: ScriptedServer) -> None:
    scripted_server.enqueue(Reply(text="first"), Reply(text="second"))
    scripted_server.script = lambda request: Reply(text=f"script saw {request.body['model']}")

    answers = [chat(scripted_server, model=m).json()["choices"][0]["message"]["content"] for m in "abc"]

    assert answers == ["first", "second", "script saw c"]
    assert scripted_server.pending == 0


def test_empty_queue_and_no_script_answers_500_naming_the_cause(scripted_server: ScriptedServer) -> None:
    response = chat(scripted_server)

    assert response.status_code == 500
    assert "scripted server: no reply queued" in response.json()["error"]["message"]


def test_script_returning_none_or_raising_answers_500(scripted_server: ScriptedServer) -> None:
    def script(request: RecordedRequest) -> Reply | None:
        if request.body["model"] == "boom":
            raise ValueError("bad script")
        return None

    scripted_server.script = script

    assert "no reply queued" in chat(scripted_server).json()["error"]["message"]
    failed = chat(scripted_server, model="boom")
    assert failed.status_code == 500
    assert "ValueError: bad script" in failed.json()["error"]["message"]


def test_429_fault_sets_retry_after_and_an_openai_error_body(scripted_server: ScriptedServer) -> None:
    scripted_server.enqueue(Fault(status=429, retry_after=1.5), Fault(status=503, message="overloaded"))

    limited = chat(scripted_server)
    unavailable = chat(scripted_server, stream=True)

    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "1.5"
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert unavailable.status_code == 503
    assert "retry-after" not in unavailable.headers
    assert unavailable.json()["error"] == {
        "message": "overloaded", "type": "server_error", "param": None, "code": "server_error"
    }


def test_malformed_fault_sends_invalid_json_or_a_broken_event(scripted_server: ScriptedServer) -> None:
    scripted_server.enqueue(Fault(malformed=True), Fault(malformed=True))

    whole = chat(scripted_server)
    assert whole.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        whole.json()
    with pytest.raises(json.JSONDecodeError):
        stream_events(scripted_server)


def test_truncated_stream_stops_mid_body_without_done(scripted_server: ScriptedServer) -> None:
    scripted_server.enqueue(Reply(text="one two three four", truncate_after_chunks=2))
    payload = {"model": "fast", "messages": MESSAGES, "stream": True}
    received: list[str] = []

    with pytest.raises(httpx.RemoteProtocolError):
        with httpx.stream("POST", f"{scripted_server.base_url}/chat/completions", json=payload) as response:
            received.extend(response.iter_lines())

    text = "".join(json.loads(line[6:])["choices"][0]["delta"]["content"] for line in received if line[6:])
    assert text == "one two "
    assert not any("[DONE]" in line for line in received)


def test_truncated_whole_reply_is_cut_mid_body(scripted_server: ScriptedServer) -> None:
    scripted_server.enqueue(Reply(text="never whole", truncate_after_chunks=0))

    with pytest.raises(httpx.RemoteProtocolError):
        chat(scripted_server)


def test_latency_injection_delays_first_chunk_and_paces_the_rest(scripted_server: ScriptedServer) -> None:
    scripted_server.enqueue(Reply(text="a b c d e", ttft_s=0.2, tokens_per_s=50))
    payload = {"model": "fast", "messages": MESSAGES, "stream": True}
    arrivals: list[float] = []

    start = time.monotonic()
    with httpx.stream("POST", f"{scripted_server.base_url}/chat/completions", json=payload) as response:
        for line in response.iter_lines():
            if line.startswith("data: {") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
                arrivals.append(time.monotonic() - start)

    # Lower bounds only: the server cannot send a chunk before its scripted time, but a busy client may read late.
    assert len(arrivals) == 5
    assert arrivals[0] >= 0.2
    assert arrivals[-1] >= 0.2 + 4 / 50


def test_latency_injection_applies_to_whole_replies(scripted_server: ScriptedServer) -> None:
    scripted_server.enqueue(Reply(text="a b c", ttft_s=0.15, tokens_per_s=20))

    start = time.monotonic()
    assert chat(scripted_server).status_code == 200

    assert time.monotonic() - start >= 0.15 + 2 / 20


def test_hang_is_bounded_by_the_client_timeout_and_does_not_block_stop() -> None:
    server = ScriptedServer().start()
    server.enqueue(Fault(hang=True), Fault(hang=True))
    outcome: list[BaseException] = []

    def patient_client() -> None:
        try:
            chat(server, timeout=60)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    start = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        chat(server, timeout=0.3)
    assert time.monotonic() - start < 2.0
    waiting = threading.Thread(target=patient_client)
    waiting.start()
    wait_until(lambda: server.request_count == 2)

    start = time.monotonic()
    server.stop()
    waiting.join(5)

    assert time.monotonic() - start < 2.0
    assert not waiting.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], httpx.RemoteProtocolError | httpx.ReadError)


def test_stop_closes_idle_keep_alive_connections() -> None:
    server = ScriptedServer().start()
    server.enqueue(Reply(text="one"))
    with httpx.Client() as client:
        assert client.post(f"{server.base_url}/chat/completions", json={"model": "m", "messages": []}).is_success
        start = time.monotonic()
        server.stop()
        assert time.monotonic() - start < 2.0
    server.stop()  # stopping twice is harmless
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.base_url


def test_concurrent_clients_each_get_one_distinct_reply(scripted_server: ScriptedServer) -> None:
    scripted_server.enqueue(*(Reply(text=f"reply {i}") for i in range(20)))

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda _: chat(scripted_server).json()["choices"][0]["message"]["content"], range(20)))

    assert sorted(answers) == sorted(f"reply {i}" for i in range(20))
    assert scripted_server.request_count == 20


def test_models_endpoint_lists_the_scripted_models(scripted_server: ScriptedServer) -> None:
    body = httpx.get(f"{scripted_server.base_url}/models").json()

    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["fast", "strong"]
    assert scripted_server.requests[0].method == "GET"


def test_unknown_route_and_non_json_body_are_client_errors(scripted_server: ScriptedServer) -> None:
    missing = httpx.post(f"{scripted_server.base_url}/embeddings", json={"input": "x"})
    broken = httpx.post(f"{scripted_server.base_url}/chat/completions", content=b"not json")

    assert missing.status_code == 404
    assert broken.status_code == 400
    assert scripted_server.requests[1].raw_body == b"not json"
    assert scripted_server.pending == 0


def test_invalid_scripts_are_refused_when_written(scripted_server: ScriptedServer) -> None:
    with pytest.raises(ValueError, match="not both"):
        Reply(text="a", json={"a": 1})
    with pytest.raises(ValueError, match="error status"):
        Fault(status=200)
    with pytest.raises(TypeError, match="Reply or Fault"):
        scripted_server.enqueue("hello")  # type: ignore[arg-type]
