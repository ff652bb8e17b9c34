"""The model gateway: one async interface in front of every model, with the policy every call needs.

A call walks its chain of models (request alias, or the agent's model then its fallbacks). For each model it
checks the response cache, then makes attempts: each one passes the model's circuit breaker, takes a
concurrency slot, reserves its worst-case cost in the budget, streams through a transport under a timeout, and
settles the reservation to the real cost. Retryable failures wait (exponential backoff with full jitter, at
least Retry-After) and try again; the rest, or exhaustion, move on to the next model. Structured output gets
one repair round. Every step is published on the event bus.

Streaming and retries: once text has reached the caller of `stream()`, a failed attempt is NOT retried and no
fallback is tried, because the caller cannot take back text it has already shown; the call ends with a
ProviderError instead. Until the first text is delivered, retries and fallbacks are free. `complete()` delivers
nothing before the end, so it always retries. Bus subscribers do see the text of attempts that later fail;
a CallRetry or CallFallback event after CallTextDelta events tells them that text was discarded.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import aclosing
from pathlib import Path
from typing import TYPE_CHECKING

from aetherflow.config.models import ModelConfig, Settings
from aetherflow.errors import AetherError, ModelUnavailableError, ProviderError, StructuredOutputError
from aetherflow.events import CallFailed, CallFinished, EventBus
from aetherflow.llm import structured
from aetherflow.llm.budget import Budget
from aetherflow.llm.cache import ResponseCache
from aetherflow.llm.call_state import CallState, DeltaCoalescer, Reply
from aetherflow.llm.chain import CallPlan, key_missing, plan_call, provider_failure_hint, unavailable_error
from aetherflow.llm.model_call import ModelCaller, ModelFailed
from aetherflow.llm.resilience import CircuitBreakers, Clock
from aetherflow.llm.transport import Transport
from aetherflow.llm.types import CallRequest, CallResult, Message, TextDelta

if TYPE_CHECKING:
    from pydantic import BaseModel


def budget_limit(settings: Settings, spent_today_usd: float) -> tuple[float | None, str]:
    """The run's spending limit, min(per-run limit, what is left of today's), and which limit that is."""
    candidates: list[tuple[float, str]] = []
    if settings.budget.per_run_usd is not None:
        candidates.append((settings.budget.per_run_usd, "per-run budget"))
    if settings.budget.per_day_usd is not None:
        left = max(0.0, settings.budget.per_day_usd - spent_today_usd)
        candidates.append((left, f"per-day budget (${spent_today_usd:.2f} already spent today)"))
    if not candidates:
        return None, "budget"
    return min(candidates, key=lambda c: c[0])


class Gateway:
    """Every model call goes through here. Safe for many concurrent calls on one event loop.

    `transports` lets tests inject {"litellm": ..., "local": ...}; by default LiteLLM serves remote models and
    the in-process local model serves `local = true` entries, each created on first use. `clock` drives the
    circuit breakers and `rng` the backoff jitter (injectable for tests). `light_transport` sends models of
    OpenAI-compatible providers (openai_compat.PROFILES) over plain httpx instead of LiteLLM, whose import
    alone takes seconds: for short-lived callers such as the pre-commit hook.
    """

    def __init__(
        self,
        settings: Settings,
        bus: EventBus,
        *,
        environ: Mapping[str, str],
        spent_today_usd: float = 0.0,
        cache_dir: Path | None = None,
        transports: Mapping[str, Transport] | None = None,
        clock: Clock = time.monotonic,
        rng: Callable[[], float] = random.random,
        light_transport: bool = False,
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.environ = environ
        limit, name = budget_limit(settings, spent_today_usd)
        self.budget = Budget(limit, name=name)
        gateway = settings.gateway
        self.breakers = CircuitBreakers(gateway.breaker_failures, gateway.breaker_cooldown_s, clock)
        cache = None
        if cache_dir is not None and settings.cache.enabled:
            cache = ResponseCache(
                cache_dir, size_limit_mb=settings.cache.size_limit_mb, ttl_seconds=settings.cache.ttl_seconds
            )
        self.cache = cache
        self._injected = dict(transports or {})
        # model_status per `gguf` setting (None: the bundled model).
        self._local_statuses: dict[str | None, tuple[bool, str]] = {}
        self._caller = ModelCaller(
            settings, bus, environ, self.budget, self.breakers, cache, self._injected, rng=rng,
            light_transport=light_transport,
        )

    # ---- what will be tried ------------------------------------------------------------------------------

    def _local_ok(self, model: ModelConfig) -> bool:
        """Whether the in-process entry `model` can run (see `_local_status`)."""
        return self._local_status(model)[0]

    def _local_status(self, model: ModelConfig) -> tuple[bool, str]:
        """Whether the in-process entry `model` can run, and why: injected, or llama-cpp installed and its file
        present or downloadable. Checked once per file: installs and files don't change mid-run."""
        if "local" in self._injected:
            return True, "local model"
        status = self._local_statuses.get(model.gguf)
        if status is None:
            from aetherflow.llm.local_model import model_status

            status = self._local_statuses[model.gguf] = model_status(model)
        return status

    def _plan(self, request: CallRequest) -> CallPlan:
        return plan_call(self.settings, request, self.environ, self._local_ok)

    def chain_for(self, request: CallRequest) -> list[str]:
        """The aliases a call would try, in order, after key, privacy and local-model substitution.

        Circuit breakers and the budget are applied per attempt, so an alias listed here may still be skipped.
        """
        return self._plan(request).chain

    def availability(self, alias: str) -> tuple[bool, str]:
        """Whether `alias` can be called now, and why (key missing, circuit open, local model not installed)."""
        model = self.settings.models.get(alias)
        if model is None:
            return False, "not in the model catalogue"
        if model.embedded:
            return self._local_status(model)
        if model.local:
            if self.breakers.state(alias) == "open":
                return False, "circuit open after repeated failures"
            return True, f"served on this machine at {model.api_base}"
        if self.settings.privacy.local_only:
            return False, "privacy.local_only forbids remote models"
        if key_missing(model, self.environ):
            return False, f"key {model.key_env} missing"
        if self.breakers.state(alias) == "open":
            wait = self.breakers.remaining_cooldown_s(alias)
            return False, f"circuit open after repeated failures (retry in {wait:.0f} s)"
        return True, f"key {model.key_env} set" if model.key_env else "no key needed"

    # ---- calls ------------------------------------------------------------------------------------------

    async def stream(self, request: CallRequest) -> AsyncIterator[TextDelta | CallResult]:
        """Text deltas as they arrive, then exactly one CallResult. Raises AetherError subclasses on failure."""
        async with aclosing(self._call(request, live=True)) as items:
            async for item in items:
                yield item

    async def complete(self, request: CallRequest) -> CallResult:
        """The whole result of a call (streamed from the provider, delivered at the end)."""
        result: CallResult | None = None
        async with aclosing(self._call(request, live=False)) as items:
            async for item in items:
                if isinstance(item, CallResult):
                    result = item
        assert result is not None, "a gateway call ends with a CallResult or an exception"
        return result

    async def _call(self, request: CallRequest, live: bool) -> AsyncIterator[TextDelta | CallResult]:
        call_id = uuid.uuid4().hex[:16]
        interval_s = self.settings.gateway.delta_interval_ms / 1000.0
        state = CallState(call_id, request, None, live, DeltaCoalescer(self.bus, call_id, request, interval_s))
        try:
            state.plan = self._plan(request)
            if not state.plan.chain:
                raise unavailable_error(self.settings, state.plan, request)
            reply: Reply | None = None
            async with aclosing(self._round(state, request.messages, state.plan.chain)) as items:
                async for item in items:
                    if isinstance(item, Reply):
                        reply = item
                    else:
                        yield item
            assert reply is not None, "a round ends with a Reply or an exception"
            reply, parsed = await self._structured(state, reply)
            result = self._finish(state, reply, parsed)
        except BaseException as exc:
            state.coalescer.flush()
            self._publish_failed(state, exc)
            raise
        yield result

    async def _round(
        self, state: CallState, messages: list[Message], chain: list[str]
    ) -> AsyncIterator[TextDelta | Reply]:
        """Try each model of `chain` in turn until one answers; fallbacks are published as they happen."""
        failures: list[ModelFailed] = []
        for index, alias in enumerate(chain):
            try:
                async with aclosing(self._caller.run(state, alias, messages)) as items:
                    async for item in items:
                        yield item
                return
            except ModelFailed as failed:
                failures.append(failed)
                if state.committed:
                    raise ProviderError(
                        f"The reply from {alias} broke off after part of it was shown: {failed.reason}",
                        "Run the request again; a retry now would have repeated the text already shown.",
                    ) from failed
            state.fallbacks.append(alias)
            if index + 1 < len(chain):
                self._caller.publish_fallback(state, alias, chain[index + 1], failures[-1].reason)
        raise self._final_error(failures)

    def _final_error(self, failures: list[ModelFailed]) -> AetherError:
        """One error for a chain where every model failed: provider failures first, then budget, then the rest."""
        reasons = "; ".join(f"{f.alias}: {f.reason}" for f in failures)
        if any(f.kind == "provider" for f in failures):
            return ProviderError(f"Every model failed ({reasons}).", provider_failure_hint(self.settings))
        budget_errors = [f.cause for f in failures if f.kind == "budget" and isinstance(f.cause, AetherError)]
        if budget_errors:
            return budget_errors[0]
        # A model that said why it cannot run (the local model names what to install) knows the fix best.
        hints = [f.cause.hint for f in failures if isinstance(f.cause, AetherError) and f.cause.hint]
        return ModelUnavailableError(
            f"No model could serve the call ({reasons}).",
            hints[0] if hints else "Wait for the circuit breaker's cool-down (gateway.breaker_cooldown_s), set "
            "another provider's key, or pip install 'aetherflow[local]'.",
        )

    async def _structured(self, state: CallState, reply: Reply) -> tuple[Reply, BaseModel | None]:
        """Parse a structured reply; on failure, one repair round showing the model its errors.

        Tool calls pass through unparsed only when the request offered tools; a call to a tool nobody offered is a
        reply that is not the requested structure, repaired (or refused) like any other.
        """
        schema = state.request.output_schema
        if schema is None or (reply.tool_calls and state.request.tools):
            return reply, None
        parsed, errors = structured.parse_reply(reply.text, schema)
        if parsed is not None:
            return reply, parsed
        messages = structured.repair_messages(state.request.messages, reply.text, errors, schema)
        assert state.plan is not None
        chain = state.plan.chain
        repair_chain = [reply.alias, *(a for a in chain[chain.index(reply.alias) + 1 :] if a != reply.alias)]
        # The repair's text is not streamed to the caller: it replaces, not continues, what was shown.
        state.live, state.committed = False, False
        repaired: Reply | None = None
        async with aclosing(self._round(state, messages, repair_chain)) as items:
            async for item in items:
                if isinstance(item, Reply):
                    repaired = item
        assert repaired is not None, "a round ends with a Reply or an exception"
        parsed, errors = structured.parse_reply(repaired.text, schema)
        if parsed is None:
            raise StructuredOutputError(
                f"The reply of {repaired.alias} did not match {schema.__name__}, even after a repair round:\n{errors}",
                "Use a model with the json_schema capability, simplify the schema, or raise max_output_tokens.",
            )
        return repaired, parsed

    def _finish(self, state: CallState, reply: Reply, parsed: BaseModel | None) -> CallResult:
        state.coalescer.flush()
        request = state.request
        result = CallResult(
            call_id=state.call_id, text=reply.text, tool_calls=reply.tool_calls, parsed=parsed, usage=state.usage,
            cost_usd=state.cost_usd, latency_s=state.elapsed_s(), ttft_s=state.ttft_s, alias=reply.alias,
            model_id=reply.model_id, cache_hit=reply.cache_hit, retries=state.retries,
            fallbacks=list(state.fallbacks), redactions=state.redactions, finish_reason=reply.finish_reason,
        )
        self.bus.publish(
            CallFinished(
                call_id=state.call_id, alias=reply.alias, model_id=reply.model_id,
                agent=state.plan.agent if state.plan else request.agent, usage=result.usage,
                cost_usd=result.cost_usd, latency_s=result.latency_s, ttft_s=result.ttft_s,
                cache_hit=result.cache_hit, retries=result.retries, fallbacks=result.fallbacks,
                redactions=result.redactions, run_id=request.run_id, task_id=request.task_id,
            )
        )
        return result

    def _publish_failed(self, state: CallState, exc: BaseException) -> None:
        if isinstance(exc, AetherError):
            error = exc.message
        elif isinstance(exc, GeneratorExit):
            error = "the caller stopped reading the stream"
        elif isinstance(exc, asyncio.CancelledError):
            error = "cancelled"
        else:
            error = f"{type(exc).__name__}: {exc}"
        self.bus.publish(
            CallFailed(
                call_id=state.call_id, alias=state.failure_alias(), error=error, cost_usd=state.cost_usd,
                run_id=state.request.run_id, task_id=state.request.task_id,
            )
        )

    async def aclose(self) -> None:
        """Close the transports this gateway created and the response cache."""
        await self._caller.aclose()
        if self.cache is not None:
            self.cache.close()
