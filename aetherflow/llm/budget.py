"""A spending limit that holds under concurrency: reserve the worst case before a call, settle to the real cost.

The gateway reserves each call's upper-bound cost before any byte is sent; a reservation that would take
spent + reserved past the limit is refused. Afterwards the reservation is settled to the actual cost (or released
when nothing was billed). Because reservations are upper bounds, parallel subtasks, retries and fallbacks can never
push spending past the limit together.
"""

from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass, field

from aetherflow.errors import BudgetExceededError

log = logging.getLogger(__name__)

# Float sums of many small costs drift by ~1e-16 per operation; a reservation that fits the limit exactly must not
# be refused because of that noise.
_EPSILON_USD = 1e-9

_ids = itertools.count(1)


@dataclass(frozen=True)
class Reservation:
    """A hold on part of the budget for one call. Pass it back to `settle` or `release`."""

    amount_usd: float
    what: str
    id: int = field(default_factory=lambda: next(_ids))


class Budget:
    """A USD limit shared by every call of a run; `limit_usd=None` means unlimited but still tracked.

    Thread-safe: one lock guards the totals, so asyncio tasks and worker threads can reserve at once.
    `name` says which limit this is in refusal messages (e.g. "per-run budget").
    """

    def __init__(self, limit_usd: float | None, *, name: str = "budget") -> None:
        if limit_usd is not None and limit_usd < 0:
            raise ValueError(f"a budget limit cannot be negative (got {limit_usd})")
        self.limit_usd = limit_usd
        self.name = name
        self._lock = threading.Lock()
        self._open: dict[int, Reservation] = {}
        self._spent = 0.0
        self._reserved = 0.0
        self._overrun = 0.0

    @property
    def spent_usd(self) -> float:
        """What settled calls actually cost."""
        with self._lock:
            return self._spent

    @property
    def reserved_usd(self) -> float:
        """What calls in flight may still cost, at most."""
        with self._lock:
            return self._reserved

    @property
    def remaining_usd(self) -> float | None:
        """What can still be reserved; None when unlimited."""
        with self._lock:
            return self._remaining_locked()

    @property
    def overrun_usd(self) -> float:
        """How much actual costs exceeded their reservations in total; above 0 means an estimate was too low."""
        with self._lock:
            return self._overrun

    def reserve(self, amount_usd: float, what: str) -> Reservation:
        """Hold `amount_usd` for a call described by `what`, or raise BudgetExceededError before it is sent."""
        if amount_usd < 0:
            raise ValueError(f"a reservation cannot be negative (got {amount_usd})")
        with self._lock:
            remaining = self._remaining_locked()
            if remaining is not None and amount_usd > remaining + _EPSILON_USD:
                raise self._refusal(amount_usd, what, remaining)
            reservation = Reservation(amount_usd=amount_usd, what=what)
            self._open[reservation.id] = reservation
            self._reserved += amount_usd
            return reservation

    def settle(self, reservation: Reservation, actual_usd: float) -> None:
        """Replace the reserved amount by the actual cost. Settling twice is a no-op (the first settle wins)."""
        if actual_usd < 0:
            raise ValueError(f"an actual cost cannot be negative (got {actual_usd})")
        with self._lock:
            if self._open.pop(reservation.id, None) is None:
                return
            # With nothing in flight the held amount is exactly 0, not the float residue of many subtractions.
            self._reserved = max(self._reserved - reservation.amount_usd, 0.0) if self._open else 0.0
            self._spent += actual_usd
            # Without a limit the gateway holds 0 on purpose (nothing needs bounding), so paying more than that is
            # no estimate gone wrong: flagging it would print a false warning after every unlimited call.
            excess = actual_usd - reservation.amount_usd if self.limit_usd is not None else 0.0
            if excess > _EPSILON_USD:
                self._overrun += excess
        if excess > _EPSILON_USD:
            # Still recorded: the money is spent. It means the worst-case estimate was not an upper bound.
            log.warning(
                "%s cost $%.6f, more than its reservation of $%.6f; the estimate was too low",
                reservation.what,
                actual_usd,
                reservation.amount_usd,
            )

    def release(self, reservation: Reservation) -> None:
        """Give the reservation back unused (the call failed before anything was billed)."""
        self.settle(reservation, 0.0)

    def _remaining_locked(self) -> float | None:
        if self.limit_usd is None:
            return None
        return max(self.limit_usd - self._spent - self._reserved, 0.0)

    def _refusal(self, amount_usd: float, what: str, remaining: float) -> BudgetExceededError:
        return BudgetExceededError(
            f"Refused {what}: it could cost up to ${amount_usd:.4f}, but only ${remaining:.4f} of the "
            f"{self.name} of ${self.limit_usd:.2f} remains (spent ${self._spent:.4f}, "
            f"${self._reserved:.4f} held by calls in flight).",
            "Raise the limit with `--budget USD` for this run, or set budget.per_run_usd / budget.per_day_usd in "
            "aetherflow.toml; a smaller max_output_tokens or a cheaper model also lowers the worst case.",
        )
