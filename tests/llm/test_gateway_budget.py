"""The budget as the gateway applies it: worst case reserved before a byte is sent, settled after, never exceeded
under concurrency, and models of unknown price refused under a limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aetherflow.errors import BudgetExceededError, UnknownPriceError
from aetherflow.events import CallFailed, CallFinished, CallStarted, Event, EventBus
from aetherflow.llm.gateway import Gateway
from aetherflow.llm.transport import TransportChunk, TransportRequest
from aetherflow.llm.types import CallRequest, CallResult, Message
from aetherflow.testing.server import Fault, Reply, ScriptedServer
from aetherflow.testing.settings import scripted_environ, scripted_settings


def make_gateway(server: ScriptedServer, spent_today_usd: float = 0.0, **overrides: Any) -> tuple[Gateway, list[Event]]:
    settings = scripted_settings(server, **overrides)
    bus = EventBus()
    events: list[Event] = []
    bus.subscribe(events.append)
    return Gateway(settings, bus, environ=scripted_environ(), spent_today_usd=spent_today_usd), events


def ask(**fields: Any) -> CallRequest:
    fields.setdefault("alias", "fast")
    return CallRequest(messages=[Message(role="user", content="write the module")], **fields)


async def test_refused_before_any_byte_is_sent(scripted_server: ScriptedServer) -> None:
    gateway, events = make_gateway(scripted_server, budget={"per_run_usd": 0.001})
    scripted_server.enqueue(Reply(text="never"))

    with pytest.raises(BudgetExceededError) as caught:
        await gateway.complete(ask())  # worst case: 4096 output tokens at $2/M = $0.008

    assert scripted_server.request_count == 0
    assert "fast" in caught.value.message and "--budget" in (caught.value.hint or "")
    assert gateway.budget.spent_usd == 0 and gateway.budget.reserved_usd == 0
    assert not [e for e in events if isinstance(e, CallStarted)]
    [failed] = [e for e in events if isinstance(e, CallFailed)]
    assert failed.cost_usd == 0 and "Refused" in failed.error
    await gateway.aclose()


async def test_a_cheaper_fallback_that_fits_is_used(scripted_server: ScriptedServer) -> None:
    # The orchestrator starts on "strong" ($15/M out) and falls back to "fast" ($2/M out); 8192 output tokens.
    gateway, _ = make_gateway(scripted_server, budget={"per_run_usd": 0.05})
    scripted_server.enqueue(Reply(text="planned cheaply", prompt_tokens=20, completion_tokens=10))

    result = await gateway.complete(ask(alias=None, agent="orchestrator"))

    assert result.alias == "fast" and result.fallbacks == ["strong"]
    assert [r.body["model"] for r in scripted_server.requests] == ["fast"]
    await gateway.aclose()


async def test_the_daily_limit_counts_what_was_spent_today(scripted_server: ScriptedServer) -> None:
    gateway, _ = make_gateway(scripted_server, spent_today_usd=9.999, budget={"per_run_usd": 2.0, "per_day_usd": 10.0})

    with pytest.raises(BudgetExceededError, match="per-day"):
        await gateway.complete(ask(max_tokens=1000))

    assert gateway.budget.limit_usd == pytest.approx(0.001)
    assert scripted_server.request_count == 0
    await gateway.aclose()


async def test_retries_release_and_success_settles_to_the_real_cost(scripted_server: ScriptedServer) -> None:
    gateway, events = make_gateway(scripted_server)
    scripted_server.enqueue(Fault(status=500), Reply(text="ok", prompt_tokens=100, completion_tokens=50))

    result = await gateway.complete(ask())

    assert result.retries == 1
    assert result.cost_usd == pytest.approx((100 * 1.0 + 50 * 2.0) / 1e6)
    assert gateway.budget.spent_usd == pytest.approx(result.cost_usd)
    assert gateway.budget.reserved_usd == 0
    [started] = [e for e in events if isinstance(e, CallStarted)]
    assert started.reserved_usd >= 4096 * 2.0 / 1e6
    await gateway.aclose()


async def test_twenty_concurrent_calls_never_exceed_the_limit(scripted_server: ScriptedServer) -> None:
    limit = 0.02
    gateway, events = make_gateway(scripted_server, budget={"per_run_usd": limit, "per_day_usd": None})
    budget = gateway.budget
    # Each call may cost ~$0.002 (1000 output tokens at $2/M) and really costs nearly that.
    scripted_server.script = lambda request: Reply(text="done", prompt_tokens=10, completion_tokens=990, ttft_s=0.05)
    snapshots: list[float] = []
    gateway.bus.subscribe(lambda event: snapshots.append(budget.spent_usd + budget.reserved_usd))

    outcomes = await asyncio.gather(*(gateway.complete(ask(max_tokens=1000)) for _ in range(20)),
                                    return_exceptions=True)

    results = [o for o in outcomes if isinstance(o, CallResult)]
    refused = [o for o in outcomes if isinstance(o, BudgetExceededError)]
    assert len(results) + len(refused) == 20
    assert results and refused
    assert sum(r.cost_usd for r in results) <= limit
    assert budget.spent_usd == pytest.approx(sum(r.cost_usd for r in results))
    assert budget.spent_usd + budget.reserved_usd <= limit
    assert max(snapshots) <= limit + 1e-12
    assert budget.reserved_usd == 0
    assert scripted_server.request_count == len(results)
    assert len([e for e in events if isinstance(e, CallFinished)]) == len(results)
    assert len([e for e in events if isinstance(e, CallFailed)]) == len(refused)
    await gateway.aclose()


async def test_unknown_price_is_refused_under_a_budget(scripted_server: ScriptedServer) -> None:
    mystery = {"model": "openai/mystery-model-nobody-prices", "api_base": scripted_server.base_url,
               "key_env": "SCRIPTED_API_KEY"}
    gateway, _ = make_gateway(scripted_server, models={"mystery": mystery})

    with pytest.raises(UnknownPriceError) as caught:
        await gateway.complete(ask(alias="mystery"))

    assert "[models.mystery.price]" in (caught.value.hint or "")
    assert scripted_server.request_count == 0
    await gateway.aclose()


async def test_unknown_price_without_a_budget_is_called_and_costs_nothing_known(
    scripted_server: ScriptedServer,
) -> None:
    mystery = {"model": "openai/mystery-model-nobody-prices", "api_base": scripted_server.base_url,
               "key_env": "SCRIPTED_API_KEY"}
    gateway, _ = make_gateway(scripted_server, models={"mystery": mystery},
                              budget={"per_run_usd": None, "per_day_usd": None})
    scripted_server.enqueue(Reply(text="free?", prompt_tokens=10, completion_tokens=2))

    result = await gateway.complete(ask(alias="mystery"))

    assert gateway.budget.limit_usd is None and gateway.budget.remaining_usd is None
    assert result.text == "free?" and result.cost_usd == 0.0 and result.usage.prompt_tokens == 10
    await gateway.aclose()


class NoUsageTransport:
    """A provider that streams text and a finish reason but never reports token usage."""

    async def stream(self, request: TransportRequest) -> AsyncIterator[TransportChunk]:
        yield TransportChunk(text="twelve words of reply text that the provider never counted for us at all")
        yield TransportChunk(finish_reason="stop")

    async def aclose(self) -> None:
        return None


async def test_a_reply_without_usage_is_still_charged(scripted_server: ScriptedServer) -> None:
    settings = scripted_settings(scripted_server)
    gateway = Gateway(settings, EventBus(), environ=scripted_environ(), transports={"litellm": NoUsageTransport()})

    result = await gateway.complete(ask())

    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens >= 12
    expected = (result.usage.prompt_tokens * 1.0 + result.usage.completion_tokens * 2.0) / 1e6
    assert result.cost_usd == pytest.approx(expected) and gateway.budget.spent_usd == pytest.approx(expected)
    await gateway.aclose()
