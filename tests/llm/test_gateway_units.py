"""The gateway's pure pieces: backoff, circuit breakers, usage normalisation, LiteLLM error classification,
structured-output parsing, cache keys, wire format and the budget limit."""

from __future__ import annotations

import email.utils
import time
from types import ModuleType

import httpx
import pytest
from pydantic import BaseModel

from aetherflow.llm._litellm import import_litellm
from aetherflow.llm.cache import CachedReply, ResponseCache, cache_key
from aetherflow.llm.gateway import budget_limit
from aetherflow.llm.litellm_transport import completion_kwargs, retry_after_s, transport_error
from aetherflow.llm.resilience import CircuitBreakers, backoff_delay
from aetherflow.llm.structured import parse_reply, strip_fences
from aetherflow.llm.transport import TransportRequest
from aetherflow.llm.types import ImagePart, Message, TextPart, ToolCall, Usage
from aetherflow.llm.usage import usage_from_litellm
from aetherflow.llm.wire import message_dict
from aetherflow.testing.settings import scripted_settings


@pytest.fixture(scope="module")
def litellm() -> ModuleType:
    return import_litellm()


# ---- backoff and breakers ------------------------------------------------------------------------------------

def test_backoff_is_exponential_with_full_jitter_and_a_ceiling() -> None:
    ceilings = [backoff_delay(n, initial_s=0.5, max_s=3.0, rng=lambda: 1.0) for n in range(5)]
    assert ceilings == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff_delay(3, initial_s=0.5, max_s=3.0, rng=lambda: 0.0) == 0.0
    assert backoff_delay(2, initial_s=0.5, max_s=3.0, rng=lambda: 0.25) == 0.5


def test_retry_after_is_a_floor_that_jitter_never_shortens() -> None:
    assert backoff_delay(0, initial_s=0.5, max_s=3.0, retry_after_s=2.5, rng=lambda: 0.1) == 2.5
    assert backoff_delay(3, initial_s=0.5, max_s=3.0, retry_after_s=0.2, rng=lambda: 1.0) == 3.0


def test_breaker_opens_after_consecutive_failures_and_half_opens_for_one_trial() -> None:
    now = [0.0]
    breakers = CircuitBreakers(failure_threshold=3, cooldown_s=10.0, clock=lambda: now[0])
    for _ in range(2):
        assert breakers.acquire("m")
        breakers.record_failure("m")
    breakers.record_success("m")  # a success in between resets the count
    for _ in range(3):
        assert breakers.acquire("m")
        breakers.record_failure("m")
    assert breakers.state("m") == "open" and not breakers.acquire("m")
    assert breakers.remaining_cooldown_s("m") == 10.0
    assert breakers.state("other") == "closed"

    now[0] = 10.0
    assert breakers.state("m") == "half_open"
    assert breakers.acquire("m")
    assert not breakers.acquire("m")  # only one trial at a time
    breakers.record_failure("m")
    assert breakers.state("m") == "open"

    now[0] = 20.0
    assert breakers.acquire("m")
    breakers.release_trial("m")  # a trial that ended without a verdict frees the slot
    assert breakers.acquire("m")
    breakers.record_success("m")
    assert breakers.state("m") == "closed" and breakers.acquire("m") and breakers.acquire("m")


# ---- usage normalisation -------------------------------------------------------------------------------------

def test_usage_from_raw_provider_dicts() -> None:
    anthropic = {"input_tokens": 100, "output_tokens": 50, "cache_creation_input_tokens": 200,
                 "cache_read_input_tokens": 300}
    assert usage_from_litellm(anthropic) == Usage(prompt_tokens=600, completion_tokens=50, cached_read_tokens=300,
                                                  cache_write_tokens=200)
    deepseek = {"prompt_tokens": 1000, "completion_tokens": 10, "prompt_cache_hit_tokens": 800,
                "prompt_cache_miss_tokens": 200}
    assert usage_from_litellm(deepseek) == Usage(prompt_tokens=1000, completion_tokens=10, cached_read_tokens=800)
    gemini = {"promptTokenCount": 1000, "candidatesTokenCount": 20, "cachedContentTokenCount": 600}
    assert usage_from_litellm(gemini) == Usage(prompt_tokens=1000, completion_tokens=20, cached_read_tokens=600)
    openai = {"prompt_tokens": 90, "completion_tokens": 9, "prompt_tokens_details": {"cached_tokens": 64}}
    assert usage_from_litellm(openai) == Usage(prompt_tokens=90, completion_tokens=9, cached_read_tokens=64)
    assert usage_from_litellm(None) == Usage()


def test_usage_from_litellm_objects(litellm: ModuleType) -> None:
    from litellm.llms.anthropic.chat.transformation import AnthropicConfig
    from litellm.llms.vertex_ai.gemini.vertex_and_google_ai_studio_gemini import VertexGeminiConfig

    anthropic = AnthropicConfig().calculate_usage(
        {"input_tokens": 100, "output_tokens": 50, "cache_creation_input_tokens": 200,
         "cache_read_input_tokens": 300}, None)
    assert usage_from_litellm(anthropic) == Usage(prompt_tokens=600, completion_tokens=50, cached_read_tokens=300,
                                                  cache_write_tokens=200)
    deepseek = litellm.Usage(prompt_tokens=1000, completion_tokens=10, total_tokens=1010,
                             prompt_cache_hit_tokens=800, prompt_cache_miss_tokens=200)
    assert usage_from_litellm(deepseek) == Usage(prompt_tokens=1000, completion_tokens=10, cached_read_tokens=800)
    gemini = VertexGeminiConfig._calculate_usage({"usageMetadata": {
        "promptTokenCount": 1000, "candidatesTokenCount": 20, "totalTokenCount": 1020,
        "cachedContentTokenCount": 600}})
    assert usage_from_litellm(gemini) == Usage(prompt_tokens=1000, completion_tokens=20, cached_read_tokens=600)
    plain = litellm.Usage(prompt_tokens=12, completion_tokens=3, total_tokens=15)
    assert usage_from_litellm(plain) == Usage(prompt_tokens=12, completion_tokens=3)


def test_cached_counts_reported_outside_the_prompt_are_added_back() -> None:
    usage = usage_from_litellm({"prompt_tokens": 10, "completion_tokens": 1, "cache_read_input_tokens": 500})
    assert usage.prompt_tokens == 510 and usage.cached_read_tokens == 500


# ---- LiteLLM errors ------------------------------------------------------------------------------------------

def _response(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, headers=headers or {}, request=httpx.Request("POST", "http://127.0.0.1/v1"))


def test_status_classification(litellm: ModuleType) -> None:
    exc = litellm.exceptions
    cases = [
        (exc.RateLimitError("slow down", "openai", "m", response=_response(429)), 429, True),
        (exc.InternalServerError("boom", "openai", "m", response=_response(500)), 500, True),
        (exc.ServiceUnavailableError("later", "openai", "m", response=_response(503)), 503, True),
        (exc.BadRequestError("bad", "m", "openai", response=_response(400)), 400, False),
        (exc.AuthenticationError("who?", "openai", "m", response=_response(401)), 401, False),
        (exc.ContextWindowExceededError("too long", "m", "openai", response=_response(400)), 400, False),
        (exc.Timeout("slow", "m", "openai"), 408, True),
        (exc.APIConnectionError("refused", "openai", "m"), None, True),
    ]
    for error, status, retryable in cases:
        mapped = transport_error(error)
        assert (mapped.retryable, type(error).__name__) == (retryable, type(error).__name__)
        if status is not None:
            assert mapped.status == status
    import openai

    conflict = openai.ConflictError("conflict", response=_response(409), body=None)
    assert transport_error(conflict).retryable and transport_error(conflict).status == 409


def test_retry_after_is_read_from_the_headers_litellm_attaches(litellm: ModuleType) -> None:
    error = litellm.exceptions.RateLimitError("slow down", "openai", "m", response=_response(429))
    error.litellm_response_headers = httpx.Headers({"Retry-After": "2.5"})
    assert transport_error(error).retry_after_s == 2.5

    via_response = litellm.exceptions.RateLimitError("x", "openai", "m", response=_response(429, {"retry-after": "7"}))
    assert retry_after_s(via_response) == 7.0

    millis = litellm.exceptions.RateLimitError("x", "openai", "m", response=_response(429))
    millis.litellm_response_headers = {"retry-after-ms": "1500", "retry-after": "9"}
    assert retry_after_s(millis) == 1.5

    dated = litellm.exceptions.RateLimitError("x", "openai", "m", response=_response(429))
    dated.litellm_response_headers = {"retry-after": email.utils.formatdate(time.time() + 30, usegmt=True)}
    assert 25 <= (retry_after_s(dated) or 0) <= 31

    garbage = litellm.exceptions.RateLimitError("x", "openai", "m", response=_response(429))
    garbage.litellm_response_headers = {"retry-after": "soon"}
    assert retry_after_s(garbage) is None


def test_completion_kwargs_turn_off_sdk_retries_and_never_send_the_process_key() -> None:
    settings = scripted_settings("http://127.0.0.1:9/v1", models={"keyless": {
        "model": "openai/llama", "api_base": "http://127.0.0.1:9/v1"}})
    request = TransportRequest(alias="keyless", model=settings.models["keyless"],
                               messages=[{"role": "user", "content": "x"}], timeout_s=7.0)
    kwargs = completion_kwargs(request)
    assert (kwargs["max_retries"], kwargs["num_retries"], kwargs["timeout"]) == (0, 0, 7.0)
    assert kwargs["stream"] is True and kwargs["stream_options"] == {"include_usage": True}
    assert kwargs["api_key"] == "no-key"
    assert "temperature" not in kwargs and "tools" not in kwargs and "response_format" not in kwargs


# ---- structured output, cache keys, wire format, budget limit ----------------------------------------------

class Point(BaseModel):
    x: int
    y: int


def test_parsing_tolerates_fences_and_chatter() -> None:
    assert strip_fences('```json\n{"x": 1, "y": 2}\n```') == '{"x": 1, "y": 2}'
    assert parse_reply('Sure! {"x": 1, "y": 2} Hope that helps.', Point)[0] == Point(x=1, y=2)
    parsed, errors = parse_reply('{"x": "one"}', Point)
    assert parsed is None and "- x:" in errors and "- y: Field required" in errors


def test_cache_key_is_stable_and_sensitive(tmp_path) -> None:  # type: ignore[no-untyped-def]
    base = dict(model_id="openai/fast", api_base="http://h/v1", messages=[{"role": "user", "content": "q"}],
                tools=None, response_format=None, temperature=0.2, max_tokens=100)
    assert cache_key(**base) == cache_key(**{**base, "messages": [{"content": "q", "role": "user"}]})
    for change in ({"model_id": "openai/strong"}, {"api_base": "http://other/v1"}, {"temperature": 0.3},
                   {"max_tokens": 101}, {"response_format": {"type": "json_object"}},
                   {"tools": [{"type": "function"}]}, {"messages": [{"role": "user", "content": "q2"}]}):
        assert cache_key(**{**base, **change}) != cache_key(**base)

    cache = ResponseCache(tmp_path / "c", size_limit_mb=1, ttl_seconds=60)
    reply = CachedReply(text="t", tool_calls=[ToolCall(id="1", name="n")], usage=Usage(prompt_tokens=3),
                        model_id="openai/fast")
    cache.put("k", reply)
    assert cache.get("k") == reply and cache.get("missing") is None
    cache.close()
    assert ResponseCache(tmp_path / "c", size_limit_mb=1, ttl_seconds=60).get("k") == reply


def test_message_dicts_in_openai_form() -> None:
    message = Message(role="user", content=[TextPart(text="look"), ImagePart(url="data:image/png;base64,AAA")],
                      cache_prefix=True)
    assert message_dict(message) == {"role": "user", "content": [
        {"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}}]}
    marked = message_dict(message, mark_cache=True)["content"]
    assert marked[0]["cache_control"] == {"type": "ephemeral"} and "cache_control" not in marked[1]
    call = Message(role="assistant", tool_calls=[ToolCall(id="c1", name="grep", arguments='{"p": 1}')])
    assert message_dict(call)["tool_calls"] == [
        {"id": "c1", "type": "function", "function": {"name": "grep", "arguments": '{"p": 1}'}}]
    assert message_dict(Message(role="tool", content="out", tool_call_id="c1"))["tool_call_id"] == "c1"


def test_budget_limit_is_the_smaller_of_run_and_what_is_left_today() -> None:
    settings = scripted_settings("http://127.0.0.1:9/v1", budget={"per_run_usd": 2.0, "per_day_usd": 10.0})
    assert budget_limit(settings, 0.0) == (2.0, "per-run budget")
    limit, name = budget_limit(settings, 9.5)
    assert limit == pytest.approx(0.5) and "per-day" in name
    assert budget_limit(settings, 12.0)[0] == 0.0
    unlimited = scripted_settings("http://127.0.0.1:9/v1", budget={"per_run_usd": None, "per_day_usd": None})
    assert budget_limit(unlimited, 5.0)[0] is None
