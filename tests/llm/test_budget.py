"""The spending limit: refusal message, settle and release, overruns, and concurrency."""

from __future__ import annotations

import threading

import pytest

from aetherflow.errors import BudgetExceededError
from aetherflow.llm.budget import Budget, Reservation


def test_reserve_within_the_limit_holds_the_amount() -> None:
    budget = Budget(1.0)
    reservation = budget.reserve(0.25, "call to sonnet")
    assert budget.reserved_usd == pytest.approx(0.25)
    assert budget.spent_usd == 0.0
    assert budget.remaining_usd == pytest.approx(0.75)
    assert reservation.amount_usd == 0.25 and reservation.what == "call to sonnet"


def test_refusal_says_what_the_call_could_cost_what_remains_and_how_to_raise_it() -> None:
    budget = Budget(0.10, name="per-run budget")
    budget.settle(budget.reserve(0.07, "first call"), 0.06)
    with pytest.raises(BudgetExceededError) as caught:
        budget.reserve(0.05, "call to sonnet (coder)")
    message = str(caught.value)
    assert "call to sonnet (coder)" in message
    assert "$0.0500" in message  # what it could cost
    assert "$0.0400" in message  # what remains
    assert "per-run budget of $0.10" in message
    assert "--budget" in message and "budget.per_run_usd" in message and "budget.per_day_usd" in message
    assert caught.value.exit_code == 1
    assert budget.reserved_usd == 0.0, "a refused call holds nothing"


def test_settle_replaces_the_reservation_by_the_actual_cost_once() -> None:
    budget = Budget(1.0)
    reservation = budget.reserve(0.5, "call")
    budget.settle(reservation, 0.2)
    budget.settle(reservation, 0.3)  # idempotent: the first settle wins
    assert budget.spent_usd == pytest.approx(0.2)
    assert budget.reserved_usd == 0.0
    assert budget.remaining_usd == pytest.approx(0.8)


def test_release_returns_the_whole_reservation() -> None:
    budget = Budget(1.0)
    reservation = budget.reserve(0.9, "call")
    with pytest.raises(BudgetExceededError):
        budget.reserve(0.2, "second call")
    budget.release(reservation)
    budget.release(reservation)
    assert budget.spent_usd == 0.0 and budget.reserved_usd == 0.0
    budget.reserve(0.2, "second call")


def test_an_exact_fit_is_allowed_despite_float_noise() -> None:
    budget = Budget(0.3)
    for _ in range(3):
        budget.settle(budget.reserve(0.1, "call"), 0.1)
    assert budget.remaining_usd == pytest.approx(0.0)
    with pytest.raises(BudgetExceededError):
        budget.reserve(0.001, "one more")


def test_an_actual_cost_above_its_reservation_is_recorded_and_flagged(caplog: pytest.LogCaptureFixture) -> None:
    budget = Budget(1.0)
    budget.settle(budget.reserve(0.1, "underestimated call"), 0.15)
    assert budget.spent_usd == pytest.approx(0.15)
    assert budget.overrun_usd == pytest.approx(0.05)
    assert "underestimated call" in caplog.text


def test_unlimited_budget_tracks_spending_and_never_refuses() -> None:
    budget = Budget(None)
    budget.settle(budget.reserve(1_000.0, "big call"), 12.5)
    assert budget.remaining_usd is None and budget.limit_usd is None
    assert budget.spent_usd == 12.5


def test_negative_amounts_are_rejected() -> None:
    budget = Budget(1.0)
    with pytest.raises(ValueError):
        budget.reserve(-0.1, "call")
    with pytest.raises(ValueError):
        Budget(-1.0)


class _CheckedBudget(Budget):
    """A Budget that checks spent + reserved <= limit under its lock at the start and end of every reservation
    and on every read of `remaining_usd` (a subclass, not a patch)."""

    def __init__(self, limit_usd: float) -> None:
        super().__init__(limit_usd)
        self.violations: list[float] = []
        self.checks = 0

    def _remaining_locked(self) -> float | None:
        self.checks += 1
        total = self._spent + self._reserved
        if self.limit_usd is not None and total > self.limit_usd + 1e-9:
            self.violations.append(total)
        return super()._remaining_locked()

    def reserve(self, amount_usd: float, what: str) -> Reservation:
        reservation = super().reserve(amount_usd, what)
        with self._lock:
            self._remaining_locked()
        return reservation


def test_twenty_threads_reserving_at_once_never_exceed_the_limit() -> None:
    budget = _CheckedBudget(1.0)
    start = threading.Barrier(20)
    settled: list[float] = []
    refused: list[int] = []

    def worker(index: int) -> None:
        start.wait()
        for attempt in range(50):
            try:
                reservation = budget.reserve(0.03, f"call {index}.{attempt}")
            except BudgetExceededError:
                refused.append(index)
                continue
            # Every 7th call fails before billing and is released; the others cost 90% of their worst case.
            if attempt % 7 == 6:
                budget.release(reservation)
            else:
                budget.settle(reservation, 0.027)
                settled.append(0.027)
            assert budget.remaining_usd is not None

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert budget.checks > 1_000
    assert budget.violations == []
    assert budget.spent_usd + budget.reserved_usd <= 1.0 + 1e-9
    assert budget.reserved_usd == pytest.approx(0.0)
    assert budget.spent_usd == pytest.approx(sum(settled))
    assert refused, "the limit was reached"
