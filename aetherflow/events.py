"""Events that flow from the core to every consumer (console printer, JSON-lines trace, ledger, TUI).

The core publishes; it never knows who listens. Events are frozen pydantic models with a `kind` tag so a trace
can be written as JSON lines and read back with `EVENT_ADAPTER.validate_json`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from aetherflow.llm.types import Usage


class Event(BaseModel):
    """Base of every event: when it happened and, when inside a run, which run and subtask."""

    model_config = ConfigDict(frozen=True)

    ts: float = Field(default_factory=time.time)
    run_id: str | None = None
    task_id: str | None = None


class CallStarted(Event):
    """A gateway call is about to send its first request."""

    kind: Literal["call_started"] = "call_started"
    call_id: str
    alias: str
    model_id: str
    agent: str | None = None
    stream: bool = True
    redactions: int = 0
    reserved_usd: float = 0.0


class CallTextDelta(Event):
    """Streamed text, coalesced so that consumers see at most a few events per second per call."""

    kind: Literal["call_text"] = "call_text"
    call_id: str
    text: str


class CallToolCall(Event):
    """The model asked for a tool."""

    kind: Literal["call_tool"] = "call_tool"
    call_id: str
    name: str
    arguments: str


class CallRetry(Event):
    """A retryable failure; the gateway waits `wait_s` then tries the same model again."""

    kind: Literal["call_retry"] = "call_retry"
    call_id: str
    alias: str
    attempt: int
    error: str
    wait_s: float


class CallFallback(Event):
    """The gateway gave up on one model and moves to the next in the fallback chain."""

    kind: Literal["call_fallback"] = "call_fallback"
    call_id: str
    from_alias: str
    to_alias: str
    reason: str


class CallFinished(Event):
    """A call ended with a result."""

    kind: Literal["call_finished"] = "call_finished"
    call_id: str
    alias: str
    model_id: str
    agent: str | None = None
    usage: Usage
    cost_usd: float
    latency_s: float
    ttft_s: float | None = None
    cache_hit: bool = False
    retries: int = 0
    fallbacks: list[str] = Field(default_factory=list)
    redactions: int = 0


class CallFailed(Event):
    """A call ended without a result (every model failed, budget refused, or schema never satisfied)."""

    kind: Literal["call_failed"] = "call_failed"
    call_id: str
    alias: str
    error: str
    cost_usd: float = 0.0


class IndexProgress(Event):
    """Indexing progress: `done` of `total` units in `phase`."""

    kind: Literal["index_progress"] = "index_progress"
    phase: str
    done: int
    total: int


TaskState = Literal["pending", "running", "retrying", "done", "failed", "skipped"]
RunStatus = Literal["planning", "running", "validating", "review", "applied", "discarded", "failed", "cancelled"]


class RunStarted(Event):
    """A run began: its request and budget."""

    kind: Literal["run_started"] = "run_started"
    request: str
    budget_usd: float | None = None


class PlanReady(Event):
    """The plan was made and checked. `plan` is Plan.model_dump(); `routes` maps task id to its route."""

    kind: Literal["plan_ready"] = "plan_ready"
    plan: dict
    routes: dict[str, dict] = Field(default_factory=dict)


class TaskStateChanged(Event):
    """A subtask moved to a new state; `detail` says why (error, retry reason, skip reason)."""

    kind: Literal["task_state"] = "task_state"
    state: TaskState
    agent: str | None = None
    alias: str | None = None
    attempt: int = 1
    detail: str = ""


class ToolExecuted(Event):
    """An agent's tool ran; `summary` is a short, already-truncated description of its result."""

    kind: Literal["tool_executed"] = "tool_executed"
    name: str
    arguments: str
    ok: bool
    summary: str


class ValidationFinished(Event):
    """A validation step (syntax or a configured check) finished."""

    kind: Literal["validation"] = "validation"
    step: str
    ok: bool
    output: str = ""


class ChangeSetReady(Event):
    """The run's change set is ready for review: per-file added/removed line counts."""

    kind: Literal["changeset_ready"] = "changeset_ready"
    files: dict[str, tuple[int, int]] = Field(default_factory=dict)


class RunFinished(Event):
    """A run ended with a status, its total cost and a one-line message."""

    kind: Literal["run_finished"] = "run_finished"
    status: RunStatus
    cost_usd: float = 0.0
    message: str = ""


AnyEvent = Annotated[
    CallStarted
    | CallTextDelta
    | CallToolCall
    | CallRetry
    | CallFallback
    | CallFinished
    | CallFailed
    | IndexProgress
    | RunStarted
    | PlanReady
    | TaskStateChanged
    | ToolExecuted
    | ValidationFinished
    | ChangeSetReady
    | RunFinished,
    Field(discriminator="kind"),
]
EVENT_ADAPTER: TypeAdapter[AnyEvent] = TypeAdapter(AnyEvent)

Subscriber = Callable[[Event], None]


class EventBus:
    """In-process publish/subscribe. Subscribers run synchronously in the publisher's thread.

    A subscriber must be quick (append to a queue, post a Textual message); one that raises is a bug in that
    subscriber and propagates, so it is found rather than silently dropped.
    """

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Register `subscriber`; returns a function that unregisters it."""
        with self._lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    def publish(self, event: Event) -> None:
        """Deliver `event` to every current subscriber."""
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            subscriber(event)
