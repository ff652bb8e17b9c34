"""Retries, Retry-After, fallbacks, timeouts, circuit breakers and mid-stream failures, through the real LiteLLM
transport against the scripted server."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from aetherflow.errors import ModelUnavailableError, ProviderError
from aetherflow.events import CallFailed, CallFallback, CallFinished, CallRetry, CallTextDelta, Event, EventBus
from aetherflow.llm.gateway import Gateway
from aetherflow.llm.types import CallRequest, CallResult, Message, TextDelta
from aetherflow.testing.server import Fault, Reply, ScriptedServer
from aetherflow.testing.settings import scripted_environ, scripted_settings


class FakeClock:
    """A monotonic clock the test moves by hand (drives the circuit breakers' cool-down)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_gateway(server: ScriptedServer, clock: FakeClock | None = None, **gateway: Any) -> tuple[Gateway, list[Event]]:
    settings = scripted_settings(server, gateway=gateway) if gateway else scripted_settings(server)
    bus = EventBus()
    events: list[Event] = []
    bus.subscribe(events.append)
    return Gateway(settings, bus, environ=scripted_environ(), clock=clock or time.monotonic), events


def request(alias: str | None = "fast", agent: str | None = None) -> CallRequest:
    return CallRequest(messages=[Message(role="user", content="hello")], alias=alias, agent=agent)


def models_seen(server: ScriptedServer) -> list[str]:
    return [r.body["model"] for r in server.completion_requests()]


def of_type(events: list[Event], kind: type[Event]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


async def warm_up(server: ScriptedServer) -> int:
    """One call first, on a gateway with the default timeout, so the process-wide first-call costs (LiteLLM's
    import and lazy provider modules, tiktoken's load) stay out of a timing. Returns the requests made so far."""
    warm, _ = make_gateway(server)
    server.enqueue(Reply(text="warm"))
    await warm.complete(CallRequest(messages=[Message(role="user", content="warm up")], alias="strong"))
    await warm.aclose()
    return server.request_count


async def test_retry_on_429_waits_the_retry_after(scripted_server: ScriptedServer) -> None:
    gateway, events = make_gateway(scripted_server, backoff_max_s=5.0)
    scripted_server.enqueue(Fault(status=429, retry_after=0.6), Reply(text="after the wait"))

    result = await gateway.complete(request())

    first, second = scripted_server.requests
    assert second.ts - first.ts >= 0.6
    assert result.text == "after the wait" and result.retries == 1
    [retry] = of_type(events, CallRetry)
    assert (retry.alias, retry.attempt) == ("fast", 1)
    assert retry.wait_s >= 0.6 and "429" in retry.error
    assert of_type(events, CallFinished)[0].retries == 1
    await gateway.aclose()


async def test_retry_after_longer_than_the_backoff_ceiling_falls_back(scripted_server: ScriptedServer) -> None:
    gateway, events = make_gateway(scripted_server, backoff_max_s=0.2)
    warm = await warm_up(scripted_server)
    scripted_server.enqueue(Fault(status=429, retry_after=30), Reply(text="from strong"))

    started = time.monotonic()
    result = await gateway.complete(request(alias=None, agent="coder"))

    assert time.monotonic() - started < 10
    assert models_seen(scripted_server)[warm:] == ["fast", "strong"]
    assert result.alias == "strong"
    assert "30" in of_type(events, CallFallback)[0].reason
    await gateway.aclose()


async def test_fallback_after_repeated_500s(scripted_server: ScriptedServer) -> None:
    gateway, events = make_gateway(scripted_server, max_retries=2)
    scripted_server.enqueue(Fault(status=500), Fault(status=500), Fault(status=500), Reply(text="strong answers"))

    result = await gateway.complete(request(alias=None, agent="coder"))

    assert models_seen(scripted_server) == ["fast", "fast", "fast", "strong"]
    assert (result.alias, result.model_id, result.text) == ("strong", "openai/strong", "strong answers")
    assert result.retries == 2 and result.fallbacks == ["fast"]
    [fallback] = of_type(events, CallFallback)
    assert (fallback.from_alias, fallback.to_alias) == ("fast", "strong")
    assert "500" in fallback.reason
    assert [e.attempt for e in of_type(events, CallRetry)] == [1, 2]
    finished = of_type(events, CallFinished)[0]
    assert finished.fallbacks == ["fast"] and finished.alias == "strong"
    await gateway.aclose()


async def test_client_errors_are_not_retried(scripted_server: ScriptedServer) -> None:
    gateway, events = make_gateway(scripted_server, max_retries=2)
    scripted_server.enqueue(Fault(status=400), Reply(text="fallback"))

    result = await gateway.complete(request(alias=None, agent="coder"))

    assert models_seen(scripted_server) == ["fast", "strong"]
    assert result.retries == 0 and not of_type(events, CallRetry)
    await gateway.aclose()


async def test_every_model_failing_raises_provider_error(scripted_server: ScriptedServer) -> None:
    gateway, events = make_gateway(scripted_server, max_retries=0)
    scripted_server.enqueue(Fault(status=503), Fault(status=401))

    with pytest.raises(ProviderError) as caught:
        await gateway.complete(request(alias=None, agent="coder"))

    assert "fast: HTTP 503" in caught.value.message and "strong: HTTP 401" in caught.value.message
    assert caught.value.hint
    [failed] = of_type(events, CallFailed)
    assert failed.alias == "strong" and "Every model failed" in failed.error
    await gateway.aclose()


async def test_malformed_and_truncated_replies_are_retried(scripted_server: ScriptedServer) -> None:
    gateway, _ = make_gateway(scripted_server, max_retries=2)
    scripted_server.enqueue(Fault(malformed=True), Reply(text="a b c d e f", truncate_after_chunks=2),
                            Reply(text="finally whole"))

    result = await gateway.complete(request())

    assert result.text == "finally whole" and result.retries == 2
    await gateway.aclose()


async def test_a_hang_ends_within_the_timeout_and_falls_back(scripted_server: ScriptedServer) -> None:
    timeout_s, max_retries = 0.5, 1
    gateway, events = make_gateway(scripted_server, timeout_s=timeout_s, max_retries=max_retries)
    warm = await warm_up(scripted_server)
    scripted_server.enqueue(Fault(hang=True), Fault(hang=True), Reply(text="strong was quick"))

    started = time.monotonic()
    result = await gateway.complete(request(alias=None, agent="coder"))
    elapsed = time.monotonic() - started

    assert result.alias == "strong" and models_seen(scripted_server)[warm:] == ["fast", "fast", "strong"]
    # Two timed-out attempts plus one backoff (<= backoff_max_s = 0.1) plus a generous margin for a loaded machine.
    assert elapsed < (max_retries + 1) * timeout_s + 0.1 + 3.0
    assert elapsed >= (max_retries + 1) * timeout_s
    assert "timeout_s" in of_type(events, CallRetry)[0].error
    await gateway.aclose()


async def test_a_hang_on_the_only_model_raises_in_bounded_time(scripted_server: ScriptedServer) -> None:
    gateway, _ = make_gateway(scripted_server, timeout_s=0.4, max_retries=0)
    await warm_up(scripted_server)
    scripted_server.enqueue(Fault(hang=True))

    started = time.monotonic()
    with pytest.raises(ProviderError, match="0.4 s"):
        await gateway.complete(request())
    assert time.monotonic() - started < 0.4 + 3.0
    await gateway.aclose()


async def test_a_stalled_stream_is_bounded_too(scripted_server: ScriptedServer) -> None:
    gateway, _ = make_gateway(scripted_server, timeout_s=0.5, max_retries=0)
    await warm_up(scripted_server)
    # Ten words at one word per second: the first arrives at once, the stream would take ~10 s.
    scripted_server.enqueue(Reply(text=" ".join(["slow"] * 10), tokens_per_s=1.0))

    started = time.monotonic()
    with pytest.raises(ProviderError):
        await gateway.complete(request())
    assert time.monotonic() - started < 0.5 + 3.0
    await gateway.aclose()


async def test_circuit_breaker_opens_skips_and_recovers(scripted_server: ScriptedServer) -> None:
    clock = FakeClock()
    gateway, events = make_gateway(scripted_server, clock, breaker_failures=2, breaker_cooldown_s=60.0,
                                   max_retries=1)
    scripted_server.enqueue(Fault(status=500), Fault(status=500))

    with pytest.raises(ProviderError):
        await gateway.complete(request())
    assert gateway.availability("fast")[0] is False and "circuit open" in gateway.availability("fast")[1]

    # Open: the model is skipped without a request, on its own or as the head of a chain.
    with pytest.raises(ModelUnavailableError, match="circuit open"):
        await gateway.complete(request())
    scripted_server.enqueue(Reply(text="strong serves"))
    via_chain = await gateway.complete(request(alias=None, agent="coder"))
    assert via_chain.alias == "strong" and models_seen(scripted_server) == ["fast", "fast", "strong"]
    assert "circuit open" in of_type(events, CallFallback)[0].reason

    # After the cool-down one trial passes; its failure re-opens the breaker at once.
    clock.now += 61
    scripted_server.enqueue(Fault(status=500))
    with pytest.raises(ProviderError):
        await gateway.complete(request())
    assert models_seen(scripted_server)[-1] == "fast" and len(models_seen(scripted_server)) == 4
    with pytest.raises(ModelUnavailableError):
        await gateway.complete(request())

    # A successful trial closes it.
    clock.now += 61
    scripted_server.enqueue(Reply(text="back"))
    assert (await gateway.complete(request())).text == "back"
    assert gateway.availability("fast") == (True, "key SCRIPTED_API_KEY set")
    await gateway.aclose()


async def test_text_already_streamed_is_never_repeated_by_a_retry(scripted_server: ScriptedServer) -> None:
    gateway, events = make_gateway(scripted_server, max_retries=2)
    scripted_server.enqueue(Reply(text="one two three four", truncate_after_chunks=2), Reply(text="never sent"))

    received: list[str] = []
    with pytest.raises(ProviderError, match="broke off"):
        async for item in gateway.stream(request(alias=None, agent="coder")):
            assert isinstance(item, TextDelta)
            received.append(item.text)

    assert received == ["one ", "two "]
    assert scripted_server.request_count == 1 and scripted_server.pending == 1
    assert not of_type(events, CallRetry) and not of_type(events, CallFallback)
    assert of_type(events, CallFailed)
    await gateway.aclose()


async def test_failures_before_the_first_token_retry_while_streaming(scripted_server: ScriptedServer) -> None:
    gateway, events = make_gateway(scripted_server, max_retries=1)
    scripted_server.enqueue(Fault(status=502), Reply(text="clean stream"))

    items = [item async for item in gateway.stream(request())]

    assert "".join(i.text for i in items if isinstance(i, TextDelta)) == "clean stream"
    assert isinstance(items[-1], CallResult) and items[-1].retries == 1
    assert "".join(e.text for e in of_type(events, CallTextDelta)) == "clean stream"
    await gateway.aclose()


async def test_a_cancelled_call_frees_its_reservation_and_blames_no_model(scripted_server: ScriptedServer) -> None:
    gateway, events = make_gateway(scripted_server, breaker_failures=1)
    warm = await warm_up(scripted_server)
    scripted_server.enqueue(Fault(hang=True))

    task = asyncio.create_task(gateway.complete(request()))
    async with asyncio.timeout(30):  # wait (bounded) until the request is on the wire
        while scripted_server.request_count == warm:
            await asyncio.sleep(0.01)
    assert gateway.budget.reserved_usd > 0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert gateway.budget.reserved_usd == 0 and gateway.budget.spent_usd == 0
    assert gateway.availability("fast")[0] is True  # a cancellation is not the model's failure
    [failed] = of_type(events, CallFailed)
    assert failed.error == "cancelled"
    await gateway.aclose()
