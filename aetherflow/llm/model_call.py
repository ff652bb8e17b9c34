"""Calling one model for one round: cache lookup, then attempts with retries, each under breaker, budget,
concurrency slot and timeout. The Gateway walks the chain of models; this module serves one link of it.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import aclosing
from typing import TYPE_CHECKING

from aetherflow.config.models import ModelConfig, Settings, StructuredOutput
from aetherflow.errors import BudgetExceededError, ModelUnavailableError
from aetherflow.events import CallFallback, CallRetry, CallStarted, CallToolCall, EventBus
from aetherflow.llm import structured
from aetherflow.llm.cache import CachedReply, ResponseCache, cache_key
from aetherflow.llm.call_state import CallState, FailureKind, ModelFailed, Prepared, Reply, describe
from aetherflow.llm.resilience import CircuitBreakers, backoff_delay
from aetherflow.llm.spend import Spending
from aetherflow.llm.structured_modes import PROCESS_MODES, StructuredModes
from aetherflow.llm.transport import MAX_REPLY_CHARS, Transport, TransportError, TransportRequest, reply_too_large
from aetherflow.llm.transports import create_transport, transport_kind
from aetherflow.llm.types import Message, TextDelta, ToolCall, Usage
from aetherflow.llm.wire import messages_dicts, tools_dicts

if TYPE_CHECKING:
    from aetherflow.llm.budget import Budget
    from aetherflow.llm.redact import Redactor

# What a round yields: text deltas for a live caller, then the model's Reply.
Items = AsyncIterator[TextDelta | Reply]
_REPLAY_PIECE = re.compile(r"\S+\s*|\s+")
__all__ = ["FailureKind", "Items", "ModelCaller", "ModelFailed", "Prepared", "describe"]


class ModelCaller:
    """Runs rounds against single models for a Gateway; holds the transports, slots and redactor it needs."""

    def __init__(
        self,
        settings: Settings,
        bus: EventBus,
        environ: Mapping[str, str],
        budget: Budget,
        breakers: CircuitBreakers,
        cache: ResponseCache | None,
        transports: Mapping[str, Transport],
        *,
        rng: Callable[[], float],
        light_transport: bool = False,
        structured_modes: StructuredModes | None = None,
    ) -> None:
        self._settings = settings
        self._bus = bus
        self._environ = environ
        self._breakers = breakers
        self._cache = cache
        self._spending = Spending(settings, budget)
        self._transports: dict[str, Transport] = dict(transports)
        self._owned: list[Transport] = []
        self._slots: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Semaphore]] = {}
        self._redactor: Redactor | None = None
        self._rng = rng
        self._light = light_transport
        # What each model's server accepts for structured output, shared process-wide unless injected.
        self.structured_modes = PROCESS_MODES if structured_modes is None else structured_modes

    # ---- one round on one model -------------------------------------------------------------------------

    async def run(self, state: CallState, alias: str, messages: list[Message]) -> Items:
        """Deltas (when the call is live), then the model's Reply; raises ModelFailed to move to the next.

        A structured call starts in the model's mode as learned so far (structured_modes). When the server refuses
        that mode's request shape, the same model is asked again at once in the next mode: a refusal is certain,
        so it is neither retried as is nor waited for.
        """
        state.alias = alias
        model = self._settings.models[alias]
        mode = self.structured_modes.mode_for(alias, model) if state.request.output_schema is not None else None
        while True:
            prepared = self._prepare(state, alias, messages, mode)
            try:
                async with aclosing(self._serve(state, prepared)) as items:
                    async for item in items:
                        yield item
                return
            except ModelFailed as failed:
                fallback = None
                if not state.committed:
                    fallback = self.structured_modes.after_refusal(alias, model, mode, failed.cause)
                if fallback is None:
                    raise
                self._publish_mode_switch(state, failed, fallback)
                mode = fallback

    async def _serve(self, state: CallState, prepared: Prepared) -> Items:
        """One prepared request: from the cache, else through the model's transport with retries."""
        cached = self._cache.get(prepared.cache_key) if self._cache and prepared.cache_key else None
        if cached is not None:
            items = self._replay(state, prepared, cached)
        else:
            setup_started = time.monotonic()
            try:
                transport = await self._transport_for(prepared.alias, prepared.model)
            except ModelUnavailableError as exc:
                raise ModelFailed(prepared.alias, exc.message, "unavailable", exc) from exc
            # Creating a transport the first time imports LiteLLM (seconds): that is start-up, not the
            # provider's latency, so it is left out of the call's latency and time to first token.
            state.started_at += time.monotonic() - setup_started
            items = self._attempts(state, prepared, transport)
        async with aclosing(items) as stream:
            async for item in stream:
                if isinstance(item, Reply):
                    self._accept(state, prepared, item)
                yield item

    def _prepare(
        self, state: CallState, alias: str, messages: list[Message], mode: StructuredOutput | None
    ) -> Prepared:
        """Structured `mode`, redaction (remote models only), prompt-cache marks, cache key."""
        model = self._settings.models[alias]
        request = state.request
        response_format = None
        if request.output_schema is not None and mode is not None:
            messages, response_format = structured.request_for(mode, messages, request.output_schema)
        if not model.local and self._settings.privacy.redact_secrets:
            messages, count = self._get_redactor().redact_messages(messages)
            state.redactions = max(state.redactions, count)
        assert state.plan is not None
        transport_request = TransportRequest(
            alias=alias, model=model, messages=messages_dicts(messages, prompt_cache=model.supports("prompt_cache")),
            tools=tools_dicts(request.tools), response_format=response_format, temperature=state.plan.temperature,
            max_tokens=state.plan.max_tokens, timeout_s=model.call_timeout_s(self._settings.gateway.timeout_s),
            api_key=self._environ.get(model.key_env) if model.key_env else None,
        )
        key = None
        if self._cache is not None and request.use_cache:
            key = cache_key(
                model_id=model.model, api_base=model.api_base, messages=transport_request.messages,
                tools=transport_request.tools, response_format=response_format,
                temperature=transport_request.temperature, max_tokens=transport_request.max_tokens,
            )
        return Prepared(alias, model, transport_request, key)

    def _accept(self, state: CallState, prepared: Prepared, reply: Reply) -> None:
        state.add_usage(reply.usage)
        if state.ttft_s is None:
            state.ttft_s = reply.ttft_s
        if self._cache is not None and prepared.cache_key and not reply.cache_hit:
            self._cache.put(
                prepared.cache_key,
                CachedReply(text=reply.text, tool_calls=reply.tool_calls, usage=reply.usage,
                            finish_reason=reply.finish_reason, model_id=reply.model_id),
            )

    async def _replay(self, state: CallState, prepared: Prepared, cached: CachedReply) -> Items:
        """A cache hit: free, recorded as a hit, its text replayed as deltas for a streaming caller."""
        self.publish_started(state, prepared, 0.0)
        for piece in _REPLAY_PIECE.findall(cached.text):
            state.coalescer.add(piece)
            if state.live:
                state.committed = True
                yield TextDelta(call_id=state.call_id, text=piece)
        self._publish_tool_calls(state, cached.tool_calls)
        yield Reply(
            alias=prepared.alias, model_id=prepared.model.model, text=cached.text, tool_calls=cached.tool_calls,
            usage=cached.usage, finish_reason=cached.finish_reason, cache_hit=True, ttft_s=state.elapsed_s(),
        )

    # ---- attempts -----------------------------------------------------------------------------------------

    async def _attempts(self, state: CallState, prepared: Prepared, transport: Transport) -> Items:
        """Up to 1 + gateway.max_retries attempts; only retryable failures before any text was shown retry."""
        gateway = self._settings.gateway
        alias = prepared.alias
        for attempt in itertools.count():
            try:
                async with aclosing(self._attempt(state, prepared, transport)) as items:
                    async for item in items:
                        yield item
                return
            except TransportError as error:
                reason = describe(error)
                if not error.retryable or state.committed:
                    raise ModelFailed(alias, reason, "provider", error) from error
                if attempt >= gateway.max_retries:
                    raise ModelFailed(alias, f"{reason} (after {attempt + 1} attempts)", "provider", error) from error
                if self._breakers.state(alias) == "open":
                    raise ModelFailed(alias, f"{reason}; its circuit breaker is now open", "provider", error) from error
                if error.retry_after_s is not None and error.retry_after_s > gateway.backoff_max_s:
                    # Sleeping longer than the configured ceiling would stall the whole run; a fallback serves now.
                    raise ModelFailed(
                        alias, f"{reason}; the provider asked to wait {error.retry_after_s:g} s, more than "
                        f"gateway.backoff_max_s = {gateway.backoff_max_s:g}", "provider", error,
                    ) from error
                wait_s = backoff_delay(
                    attempt, initial_s=gateway.backoff_initial_s, max_s=gateway.backoff_max_s,
                    retry_after_s=error.retry_after_s, rng=self._rng,
                )
                state.retries += 1
                state.coalescer.flush()
                self._bus.publish(CallRetry(
                    call_id=state.call_id, alias=alias, attempt=attempt + 1, error=reason, wait_s=wait_s,
                    run_id=state.request.run_id, task_id=state.request.task_id,
                ))
                await asyncio.sleep(wait_s)

    async def _attempt(self, state: CallState, prepared: Prepared, transport: Transport) -> Items:
        """One attempt: breaker, concurrency slot, budget reservation, then the stream; settles its cost."""
        alias = prepared.alias
        if not self._breakers.acquire(alias):
            wait = self._breakers.remaining_cooldown_s(alias)
            raise ModelFailed(alias, f"circuit open after repeated failures (retry in {wait:.0f} s)", "unavailable")
        verdict = False
        try:
            async with self._slot(alias):
                try:
                    reservation = self._spending.reserve(prepared)
                except BudgetExceededError as exc:
                    raise ModelFailed(alias, exc.message, "budget", exc) from exc
                self.publish_started(state, prepared, reservation.amount_usd)
                reply: Reply | None = None
                try:
                    async with aclosing(self._stream(state, prepared, transport)) as items:
                        async for item in items:
                            if isinstance(item, Reply):
                                reply = item
                            else:
                                yield item
                except TransportError as error:
                    self._spending.release(reservation)
                    # A refused request shape says the server is up and answering: no verdict on its health.
                    if error.refused is None:
                        self._breakers.record_failure(alias)
                        verdict = True
                    raise
                except BaseException:
                    self._spending.release(reservation)
                    raise
                assert reply is not None, "a stream ends with a Reply or an exception"
                state.cost_usd += self._spending.settle(prepared, reservation, reply.usage)
                self._breakers.record_success(alias)
                verdict = True
        finally:
            if not verdict:
                self._breakers.release_trial(alias)
        yield reply

    async def _stream(self, state: CallState, prepared: Prepared, transport: Transport) -> Items:
        """Read one transport stream under the per-attempt deadline.

        The deadline covers the whole attempt (connect, first token, every later chunk), so a hanging server or a
        stalled stream ends in bounded time. Time the caller spends holding a delta is added back: a slow
        consumer must not make a healthy provider look slow. A reply past MAX_REPLY_CHARS ends the attempt (the
        transports stop reading there too; this also bounds any other transport).
        """
        loop = asyncio.get_running_loop()
        timeout_s = prepared.request.timeout_s
        deadline = loop.time() + timeout_s
        parts: list[str] = []
        tool_calls: list[ToolCall] = []
        usage: Usage | None = None
        finish_reason: str | None = None
        first_at: float | None = None
        received = 0
        async with aclosing(transport.stream(prepared.request)) as chunks:
            while True:
                scope = asyncio.timeout_at(deadline)
                try:
                    async with scope:
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                except TimeoutError as exc:
                    if not scope.expired():
                        raise
                    raise TransportError(
                        f"no complete reply within {timeout_s:g} s (gateway.timeout_s, or the model's timeout_s)", status=408, retryable=True
                    ) from exc
                if (chunk.text or chunk.tool_calls) and first_at is None:
                    first_at = state.elapsed_s()
                received += len(chunk.text) + sum(len(c.arguments) for c in chunk.tool_calls or [])
                if received > MAX_REPLY_CHARS:
                    raise reply_too_large()
                tool_calls.extend(chunk.tool_calls or [])
                usage = chunk.usage or usage
                finish_reason = chunk.finish_reason or finish_reason
                if chunk.text:
                    parts.append(chunk.text)
                    state.coalescer.add(chunk.text)
                    if state.live:
                        state.committed = True
                        paused_at = loop.time()
                        yield TextDelta(call_id=state.call_id, text=chunk.text)
                        deadline += loop.time() - paused_at
        if finish_reason is None:
            raise TransportError("the stream ended before the model finished (no finish reason)", retryable=True)
        text = "".join(parts)
        if usage is None:
            usage = self._spending.estimate_usage(prepared, text, tool_calls)
        self._publish_tool_calls(state, tool_calls)
        yield Reply(
            alias=prepared.alias, model_id=prepared.model.model, text=text, tool_calls=tool_calls, usage=usage,
            finish_reason=finish_reason, ttft_s=first_at,
        )

    # ---- resources and events -----------------------------------------------------------------------------

    def _slot(self, alias: str) -> asyncio.Semaphore:
        """The model's concurrency limit (max_concurrency), one semaphore per alias and event loop."""
        loop = asyncio.get_running_loop()
        entry = self._slots.get(alias)
        if entry is None or entry[0] is not loop:
            entry = (loop, asyncio.Semaphore(self._settings.models[alias].max_concurrency))
            self._slots[alias] = entry
        return entry[1]

    async def _transport_for(self, alias: str, model: ModelConfig) -> Transport:
        """The transport for `model`, created on first use (ModelUnavailableError when it cannot exist)."""
        kind = transport_kind(model, self._light)
        transport = self._transports.get(kind)
        if transport is None:
            created = await create_transport(kind)
            # Two first calls may race here; the first transport stored wins and serves both.
            transport = self._transports.setdefault(kind, created)
            if transport is created:
                self._owned.append(created)
        if model.embedded:
            from aetherflow.llm.local import LocalTransport

            if isinstance(transport, LocalTransport):
                # Finding, downloading and checking the model's file is set-up like LiteLLM's import, not part of an
                # attempt: done here, outside the attempt's timeout (a first download takes minutes), once per file.
                await asyncio.to_thread(transport.prepare, model, alias)
        return transport

    def _get_redactor(self) -> Redactor:
        if self._redactor is None:
            from aetherflow.llm.redact import redactor_for

            self._redactor = redactor_for(self._settings, self._environ)
        return self._redactor

    def publish_started(self, state: CallState, prepared: Prepared, reserved_usd: float) -> None:
        """CallStarted, once per call, when its first request is about to be sent (or served from cache)."""
        if state.started_published:
            return
        state.started_published = True
        self._bus.publish(CallStarted(
            call_id=state.call_id, alias=prepared.alias, model_id=prepared.model.model,
            agent=state.plan.agent if state.plan else None, stream=state.live, redactions=state.redactions,
            reserved_usd=reserved_usd, run_id=state.request.run_id, task_id=state.request.task_id,
        ))

    def _publish_mode_switch(self, state: CallState, failed: ModelFailed, mode: StructuredOutput) -> None:
        """CallRetry for asking the same model again, at once, in another structured mode."""
        state.retries += 1
        state.coalescer.flush()
        self._bus.publish(CallRetry(
            call_id=state.call_id, alias=failed.alias, attempt=state.retries, wait_s=0.0,
            error=f"{failed.reason}; the server refused the structured-output request, asking in mode {mode}",
            run_id=state.request.run_id, task_id=state.request.task_id,
        ))

    def publish_fallback(self, state: CallState, from_alias: str, to_alias: str, reason: str) -> None:
        """CallFallback: the chain moves from one model to the next."""
        state.coalescer.flush()
        self._bus.publish(CallFallback(
            call_id=state.call_id, from_alias=from_alias, to_alias=to_alias, reason=reason,
            run_id=state.request.run_id, task_id=state.request.task_id,
        ))

    def _publish_tool_calls(self, state: CallState, tool_calls: list[ToolCall]) -> None:
        for call in tool_calls:
            self._bus.publish(CallToolCall(
                call_id=state.call_id, name=call.name, arguments=call.arguments,
                run_id=state.request.run_id, task_id=state.request.task_id,
            ))

    async def aclose(self) -> None:
        """Close the transports created here (injected ones belong to whoever injected them)."""
        for transport in self._owned:
            await transport.aclose()
        self._owned.clear()

