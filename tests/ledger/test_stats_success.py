"""Honest figures: savings count only the runs that succeeded; task success is shown beside spend; a ledger
written before checks were recorded still opens and reports."""

from __future__ import annotations

from pathlib import Path

import pytest
from ledger_support import (
    MIXED_BASELINE,
    MIXED_SUCCESSFUL_COST,
    MIXED_TOTAL,
    STRONG,
    add_run,
    call,
    mixed_ledger,
    strong_cost,
    write_old_ledger,
)

from aetherflow.ledger.queries import past_solutions
from aetherflow.ledger.stats import compute_stats, describe_savings
from aetherflow.ledger.store import Ledger


@pytest.fixture
def ledger(tmp_path: Path):  # type: ignore[no-untyped-def]
    db = Ledger(tmp_path / "ledger.sqlite")
    yield db
    db.close()


def test_savings_count_only_successful_runs_and_success_excludes_runs_in_progress(ledger: Ledger) -> None:
    mixed_ledger(ledger)
    stats = compute_stats(ledger, STRONG)
    assert stats.total_cost_usd == pytest.approx(MIXED_TOTAL)
    assert (stats.runs, stats.runs_finished, stats.runs_succeeded) == (9, 8, 3)
    assert stats.success_rate == pytest.approx(3 / 8)
    assert stats.successful_cost_usd == pytest.approx(MIXED_SUCCESSFUL_COST)
    assert stats.baseline_cost_usd == pytest.approx(MIXED_BASELINE)
    assert stats.savings_rate == pytest.approx(1 - MIXED_SUCCESSFUL_COST / MIXED_BASELINE)
    assert describe_savings(stats) == f"saved {100 * (1 - MIXED_SUCCESSFUL_COST / MIXED_BASELINE):.0f}% on 3 successful runs"


def test_a_run_that_produced_nothing_with_a_free_model_saves_nothing(ledger: Ledger) -> None:
    add_run(ledger, "empty", "review", checks=None, cost=0.0, prompt=4000, completion=1000)
    add_run(ledger, "failed", "failed", cost=0.01, prompt=1000, completion=100)
    stats = compute_stats(ledger, STRONG)
    assert stats.savings_rate is None and stats.baseline_cost_usd == 0.0 and stats.successful_cost_usd == 0.0
    assert (stats.runs_finished, stats.runs_succeeded, stats.success_rate) == (2, 0, 0.0)
    assert stats.total_cost_usd == pytest.approx(0.01)  # a failed run's spend still counts in total spend
    assert describe_savings(stats) == "no successful run yet"


def test_failed_checks_and_undo_take_a_run_out_of_the_successes(ledger: Ledger) -> None:
    add_run(ledger, "r1", "applied", checks=True, cost=0.001, prompt=1000, completion=100)
    assert compute_stats(ledger, STRONG).runs_succeeded == 1
    ledger.record_checks("r1", False)
    assert compute_stats(ledger, STRONG).runs_succeeded == 0
    ledger.record_checks("r1", None)  # no checks configured: the apply alone decides
    assert compute_stats(ledger, STRONG).runs_succeeded == 1
    ledger.update_run("r1", summary="Did it.")
    assert past_solutions(ledger) == ["Request: request r1\nOutcome: Did it."]
    ledger.record_undo("r1")
    stats = compute_stats(ledger, STRONG)
    assert (stats.runs_finished, stats.runs_succeeded, stats.savings_rate) == (1, 0, None)
    assert past_solutions(ledger) == []


def test_a_resumed_run_forgets_its_earlier_checks(ledger: Ledger) -> None:
    add_run(ledger, "r1", "review", checks=False, cost=0.001, prompt=1000, completion=100)
    ledger.start_run("r1", "request r1", budget_usd=1.0)
    [row] = ledger.query("SELECT status, checks_passed FROM runs WHERE run_id = 'r1'")
    assert (row["status"], row["checks_passed"]) == ("planning", None)


def test_a_dearer_route_is_reported_as_costing_more(ledger: Ledger) -> None:
    add_run(ledger, "r1", "applied", checks=True, cost=2 * strong_cost(1000, 100), prompt=1000, completion=100)
    stats = compute_stats(ledger, STRONG)
    assert stats.savings_rate == pytest.approx(-1.0)
    assert describe_savings(stats) == "cost 100% more on 1 successful run"


def test_without_a_baseline_price_savings_are_unknown_but_success_is_counted(ledger: Ledger) -> None:
    add_run(ledger, "r1", "applied", checks=True, cost=0.001, prompt=1000, completion=100)
    stats = compute_stats(ledger, None)
    assert (stats.baseline_cost_usd, stats.savings_rate, stats.runs_succeeded) == (None, None, 1)
    assert describe_savings(stats).startswith("unknown on 1 successful run")


def test_json_gives_fractions_and_money_rounded_to_a_millionth(ledger: Ledger) -> None:
    add_run(ledger, "r1", "applied", checks=True, cost=0.0012345678, prompt=1000, completion=100)
    ledger.record_finished(call(None, "ask", cost=0.00000049, prompt=10, completion=1, alias="strong"))
    dumped = compute_stats(ledger, STRONG).model_dump(mode="json")
    assert dumped["total_cost_usd"] == 0.001235 and dumped["successful_cost_usd"] == 0.001235
    assert dumped["baseline_cost_usd"] == 0.0045 and dumped["by_model"] == {"fast": 0.001235, "strong": 0.0}
    assert dumped["success_rate"] == 1.0
    assert dumped["savings_rate"] == pytest.approx(1 - 0.0012345678 / 0.0045)
    assert "savings_pct" not in dumped


def test_an_old_ledger_opens_gains_the_columns_and_reports(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    write_old_ledger(path)
    ledger = Ledger(path)
    stats = compute_stats(ledger, STRONG)
    # Recorded before checks were: the applied run counts on its apply; the run that produced nothing does not.
    assert (stats.runs, stats.runs_finished, stats.runs_succeeded) == (2, 2, 1)
    assert stats.successful_cost_usd == pytest.approx(0.002)
    assert stats.baseline_cost_usd == pytest.approx(strong_cost(1000, 100))
    assert stats.savings_rate == pytest.approx(1 - 0.002 / strong_cost(1000, 100))
    ledger.record_checks("old-applied", False)
    assert compute_stats(ledger, STRONG).runs_succeeded == 0
    ledger.close()
    reopened = Ledger(path)  # a second open finds the columns there and adds nothing
    columns = [row["name"] for row in reopened.query("PRAGMA table_info(runs)")]
    assert columns[-2:] == ["checks_passed", "undone_at"] and len(columns) == len(set(columns))
    assert reopened.query("SELECT checks_passed FROM runs WHERE run_id = 'old-applied'")[0][0] == 0
    reopened.close()

