"""Retry timing and per-model circuit breakers: the gateway's reliability policy, free of any I/O.

Kept apart from the gateway so the arithmetic (backoff with full jitter, Retry-After floors, breaker states) is
small, synchronous and testable with an injected clock and random source.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Clock = Callable[[], float]
BreakerState = Literal["closed", "open", "half_open"]


def backoff_delay(
    retry_index: int,
    *,
    initial_s: float,
    max_s: float,
    retry_after_s: float | None = None,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number `retry_index` (0 for the first retry).

    Exponential backoff with full jitter (uniform between 0 and min(max_s, initial_s * 2**n)) spreads out many
    clients that failed together. A provider's Retry-After is a floor, never shortened by the jitter nor capped
    by `max_s`: retrying earlier than the provider asked only earns another 429.
    """
    ceiling = min(max_s, initial_s * (2**retry_index))
    delay = rng() * ceiling
    if retry_after_s is not None and retry_after_s > delay:
        return retry_after_s
    return delay


@dataclass
class _Breaker:
    failures: int = 0
    opened_at: float | None = None
    trial_in_flight: bool = False


class CircuitBreakers:
    """One circuit breaker per model alias, shared by every call of a gateway. Thread-safe.

    Closed: calls pass; `failure_threshold` consecutive failed attempts open it. Open: calls are refused until
    `cooldown_s` has passed. Half-open: exactly one trial attempt passes; its success closes the breaker, its
    failure opens it again for another cool-down.
    """

    def __init__(self, failure_threshold: int, cooldown_s: float, clock: Clock = time.monotonic) -> None:
        self._threshold = failure_threshold
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._breakers: dict[str, _Breaker] = {}

    def _get(self, alias: str) -> _Breaker:
        return self._breakers.setdefault(alias, _Breaker())

    def _state_locked(self, breaker: _Breaker) -> BreakerState:
        if breaker.opened_at is None:
            return "closed"
        if self._clock() - breaker.opened_at >= self._cooldown_s:
            return "half_open"
        return "open"

    def state(self, alias: str) -> BreakerState:
        """The breaker's state now (an open breaker turns half-open once its cool-down has passed)."""
        with self._lock:
            return self._state_locked(self._get(alias))

    def remaining_cooldown_s(self, alias: str) -> float:
        """Seconds until an open breaker lets a trial through; 0 when not open."""
        with self._lock:
            breaker = self._get(alias)
            if breaker.opened_at is None:
                return 0.0
            return max(0.0, self._cooldown_s - (self._clock() - breaker.opened_at))

    def acquire(self, alias: str) -> bool:
        """Ask to send one attempt to `alias`. False while open, or half-open with a trial already running."""
        with self._lock:
            breaker = self._get(alias)
            state = self._state_locked(breaker)
            if state == "closed":
                return True
            if state == "open" or breaker.trial_in_flight:
                return False
            breaker.trial_in_flight = True
            return True

    def record_success(self, alias: str) -> None:
        """An attempt succeeded: close the breaker and forget past failures."""
        with self._lock:
            self._breakers[alias] = _Breaker()

    def record_failure(self, alias: str) -> None:
        """An attempt failed: count it; open (or re-open after a failed trial) when the threshold is reached."""
        with self._lock:
            breaker = self._get(alias)
            was_trial = breaker.trial_in_flight
            breaker.trial_in_flight = False
            breaker.failures += 1
            if was_trial or breaker.failures >= self._threshold:
                breaker.opened_at = self._clock()

    def release_trial(self, alias: str) -> None:
        """An attempt ended without a verdict on the model (cancelled, refused by the budget): free the trial."""
        with self._lock:
            self._get(alias).trial_in_flight = False
