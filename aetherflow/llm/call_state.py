"""The bookkeeping of one gateway call: what it has cost, retried and streamed so far, and its coalesced events;
and the values passed between the gateway and its ModelCaller (a prepared request, a reply, a model's failure).

Kept out of gateway.py so the gateway reads as policy (chain, retries, budget, cache) over plain state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from aetherflow.config.models import ModelConfig
from aetherflow.events import CallTextDelta, EventBus
from aetherflow.llm.chain import CallPlan
from aetherflow.llm.transport import TransportError, TransportRequest
from aetherflow.llm.types import CallRequest, ToolCall, Usage

FailureKind = Literal["provider", "budget", "unavailable"]


class DeltaCoalescer:
    """Turns a stream of small text pieces into at most one CallTextDelta per `interval_s` for one call.

    Consumers (TUI, console) redraw per event; tokens can arrive hundreds of times a second. `flush` publishes
    what is pending (at the end of an attempt, before a retry, and before the call finishes).
    """

    def __init__(self, bus: EventBus, call_id: str, request: CallRequest, interval_s: float) -> None:
        self._bus = bus
        self._call_id = call_id
        self._run_id = request.run_id
        self._task_id = request.task_id
        self._interval_s = interval_s
        self._pending: list[str] = []
        self._last_publish = float("-inf")

    def add(self, text: str) -> None:
        """Queue `text`; publish the queue when the interval since the last event has passed."""
        self._pending.append(text)
        if time.monotonic() - self._last_publish >= self._interval_s:
            self.flush()

    def flush(self) -> None:
        """Publish the pending text, if any, as one event."""
        if not self._pending:
            return
        text = "".join(self._pending)
        self._pending.clear()
        self._last_publish = time.monotonic()
        self._bus.publish(
            CallTextDelta(call_id=self._call_id, text=text, run_id=self._run_id, task_id=self._task_id)
        )


class ModelFailed(Exception):
    """One model of the chain could not answer; the gateway moves on to the next."""

    def __init__(self, alias: str, reason: str, kind: FailureKind, cause: Exception | None = None) -> None:
        super().__init__(f"{alias}: {reason}")
        self.alias = alias
        self.reason = reason
        self.kind = kind
        self.cause = cause


@dataclass
class Prepared:
    """One round's request to one model, redacted and marked, ready for any number of attempts."""

    alias: str
    model: ModelConfig
    request: TransportRequest
    cache_key: str | None
    # Counted on the first budget reservation, reused by retries.
    prompt_tokens: int | None = None


def describe(error: TransportError) -> str:
    """A transport failure in one line, with its HTTP status when there was one."""
    return f"HTTP {error.status}: {error}" if error.status else str(error)


@dataclass
class Reply:
    """One model's complete answer to one round (the first request, or the structured-output repair)."""

    alias: str
    model_id: str
    text: str
    tool_calls: list[ToolCall]
    usage: Usage
    finish_reason: str | None
    cache_hit: bool = False
    ttft_s: float | None = None


@dataclass
class CallState:
    """Everything one call accumulates across rounds, models and attempts."""

    call_id: str
    request: CallRequest
    plan: CallPlan | None
    # True while text is handed to the caller as it arrives (Gateway.stream), False for Gateway.complete.
    live: bool
    coalescer: DeltaCoalescer
    started_at: float = field(default_factory=time.monotonic)
    # Set once text has reached the caller: from then on a failed attempt cannot be retried without
    # duplicating text, so it ends the call instead.
    committed: bool = False
    started_published: bool = False
    alias: str | None = None
    redactions: int = 0
    retries: int = 0
    fallbacks: list[str] = field(default_factory=list)
    cost_usd: float = 0.0
    usage: Usage = field(default_factory=Usage)
    ttft_s: float | None = None

    def elapsed_s(self) -> float:
        """Seconds since the call began."""
        return time.monotonic() - self.started_at

    def add_usage(self, usage: Usage) -> None:
        """Add one reply's tokens to the call's total."""
        self.usage = Usage(
            prompt_tokens=self.usage.prompt_tokens + usage.prompt_tokens,
            completion_tokens=self.usage.completion_tokens + usage.completion_tokens,
            cached_read_tokens=self.usage.cached_read_tokens + usage.cached_read_tokens,
            cache_write_tokens=self.usage.cache_write_tokens + usage.cache_write_tokens,
        )

    def failure_alias(self) -> str:
        """The alias a failure is recorded under: the last model tried, else what the request named."""
        return self.alias or self.request.alias or f"agent:{self.request.agent}"
