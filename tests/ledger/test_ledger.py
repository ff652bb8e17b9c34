"""The ledger records calls from events and answers the history, stats and routing queries."""

from __future__ import annotations

import time

import pytest

from aetherflow.config.models import Price
from aetherflow.events import CallFailed, CallFinished, EventBus
from aetherflow.ledger.queries import LedgerOutcomeStats, find_run_id, list_runs, past_solutions, run_detail
from aetherflow.ledger.stats import compute_stats
from aetherflow.ledger.store import Ledger
from aetherflow.llm.types import Usage

SONNET = Price(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75)


@pytest.fixture
def ledger(tmp_path):
    db = Ledger(tmp_path / "ledger.sqlite")
    yield db
    db.close()


def _finished(call_id: str, *, cost: float, prompt: int, completion: int, alias: str = "deepseek",
              run_id: str | None = "run1", cache_hit: bool = False, ttft: float | None = 0.5) -> CallFinished:
    return CallFinished(
        call_id=call_id, alias=alias, model_id=f"x/{alias}", agent="coder", run_id=run_id,
        usage=Usage(prompt_tokens=prompt, completion_tokens=completion), cost_usd=cost,
        latency_s=1.0, ttft_s=ttft, cache_hit=cache_hit,
    )


def test_events_on_the_bus_become_call_rows(ledger):
    bus = EventBus()
    ledger.attach(bus)
    bus.publish(_finished("c1", cost=0.01, prompt=1000, completion=100))
    bus.publish(CallFailed(call_id="c2", alias="sonnet", error="boom", cost_usd=0.002, run_id="run1"))
    assert ledger.call_count() == 2
    assert ledger.total_cost_usd("run1") == pytest.approx(0.012)
    assert ledger.spent_today_usd() == pytest.approx(0.012)


def test_spend_of_another_day_does_not_count_today(ledger):
    yesterday = time.time() - 2 * 86400
    ledger.record_finished(_finished("old", cost=5.0, prompt=10, completion=10).model_copy(update={"ts": yesterday}))
    ledger.record_finished(_finished("new", cost=0.25, prompt=10, completion=10))
    assert ledger.spent_today_usd() == pytest.approx(0.25)
    assert ledger.total_cost_usd() == pytest.approx(5.25)


def test_savings_compare_the_same_tokens_at_the_baseline_price(ledger):
    ledger.start_run("run1", "refactor auth", budget_usd=None)
    ledger.update_run("run1", status="applied")
    # 1M prompt + 100k completion tokens: $0.28 + $0.042 on DeepSeek, $3 + $1.5 on Sonnet.
    ledger.record_finished(_finished("c1", cost=0.322, prompt=1_000_000, completion=100_000))
    # A cache hit costs nothing and is left out of the baseline too.
    ledger.record_finished(_finished("c2", cost=0.0, prompt=1_000_000, completion=100_000, cache_hit=True))
    stats = compute_stats(ledger, SONNET)
    assert stats.baseline_cost_usd == pytest.approx(4.5)
    assert stats.total_cost_usd == pytest.approx(0.322)
    assert stats.savings_rate == pytest.approx(1 - 0.322 / 4.5)
    assert stats.cache_hits == 1 and stats.cache_hit_rate == pytest.approx(0.5)
    assert stats.by_model == {"deepseek": pytest.approx(0.322)}


def test_run_history_tasks_and_outcomes(ledger):
    ledger.start_run("20260101-aaaa", "refactor auth", budget_usd=1.0)
    ledger.update_run("20260101-aaaa", status="applied", plan={"summary": "s", "tasks": []}, summary="Moved to JWT.")
    ledger.record_task("20260101-aaaa", "t1", task_type="local_refactor", alias="codestral", status="done",
                       validation_first_try=1)
    ledger.record_task("20260101-aaaa", "t2", task_type="local_refactor", alias="codestral", status="failed",
                       validation_first_try=0)
    ledger.record_outcomes("20260101-aaaa", accepted=["a.py"], rejected=["b.py"])
    ledger.record_finished(_finished("c1", cost=0.5, prompt=10, completion=10, run_id="20260101-aaaa"))

    [row] = list_runs(ledger)
    assert (row.status, row.cost_usd, row.accepted, row.rejected, row.calls) == ("applied", 0.5, 1, 1, 1)
    assert find_run_id(ledger, "20260101") == "20260101-aaaa"
    detail = run_detail(ledger, "20260101-aaaa")
    assert detail is not None and detail.plan == {"summary": "s", "tasks": []}
    assert [t["task_id"] for t in detail.tasks] == ["t1", "t2"]
    assert past_solutions(ledger) == ["Request: refactor auth\nOutcome: Moved to JWT."]
    assert LedgerOutcomeStats(ledger).success_rates() == {("local_refactor", "codestral"): (1, 2)}
    stats = compute_stats(ledger, SONNET)
    assert stats.first_try_pass_rate == pytest.approx(0.5)
    assert stats.acceptance_rate == pytest.approx(0.5)


def test_ttft_percentiles_ignore_cache_hits(ledger):
    for i, ttft in enumerate([0.1, 0.2, 0.3, 0.4, 2.0]):
        ledger.record_finished(_finished(f"c{i}", cost=0.0, prompt=1, completion=1, ttft=ttft))
    ledger.record_finished(_finished("hit", cost=0.0, prompt=1, completion=1, ttft=0.0, cache_hit=True))
    stats = compute_stats(ledger, None)
    assert stats.ttft_p50_s == pytest.approx(0.3)
    assert stats.ttft_p95_s == pytest.approx(2.0)
    assert stats.baseline_cost_usd is None and stats.savings_rate is None
