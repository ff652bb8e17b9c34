"""`aether stats`: spend, task success, savings of the successful runs against the strongest model alone, cache
hits, pass and acceptance rates."""

from __future__ import annotations

from pydantic import BaseModel, field_serializer

from aetherflow.config.models import Price
from aetherflow.ledger.store import Ledger
from aetherflow.llm.pricing import cost_usd
from aetherflow.llm.types import Usage


# A run in one of these is still in progress: it has neither succeeded nor failed yet.
IN_PROGRESS = ("planning", "running", "validating")

# The runs that succeeded: their change was applied (the status says so, or accepted files were recorded in a
# review the status does not show yet), it was not undone, and their final checks did not fail. NULL checks
# means none are configured (or the run was recorded before checks were), so the apply alone decides.
SUCCEEDED_RUNS = """
SELECT r.run_id FROM runs r
WHERE r.undone_at IS NULL AND COALESCE(r.checks_passed, 1) = 1
  AND (r.status = 'applied' OR (r.status = 'review' AND EXISTS (
       SELECT 1 FROM outcomes o WHERE o.run_id = r.run_id AND o.accepted = 1)))
"""

MONEY_DIGITS = 6  # JSON rounds dollars to a millionth: below any price, above float noise


class Stats(BaseModel):
    """Aggregates over the whole ledger.

    Total spend counts every call. Savings compare only the runs that succeeded (see SUCCEEDED_RUNS) with what
    the same calls would have cost on the baseline model: a run that produced nothing or failed saved nothing.
    """

    total_cost_usd: float
    runs: int
    runs_finished: int
    runs_succeeded: int
    success_rate: float | None
    successful_cost_usd: float
    baseline_cost_usd: float | None
    savings_rate: float | None
    calls: int
    cache_hits: int
    cache_hit_rate: float | None
    by_model: dict[str, float]
    by_agent: dict[str, float]
    by_day: dict[str, float]
    cost_per_run_usd: float | None
    first_try_pass_rate: float | None
    acceptance_rate: float | None
    ttft_p50_s: float | None
    ttft_p95_s: float | None

    @field_serializer("total_cost_usd", "successful_cost_usd", "baseline_cost_usd", "cost_per_run_usd",
                      when_used="json")
    def _round_usd(self, value: float | None) -> float | None:
        return None if value is None else round(value, MONEY_DIGITS)

    @field_serializer("by_model", "by_agent", "by_day", when_used="json")
    def _round_spend(self, spend: dict[str, float]) -> dict[str, float]:
        return {key: round(usd, MONEY_DIGITS) for key, usd in spend.items()}


def describe_savings(stats: Stats) -> str:
    """The savings figure in words, the same in the CLI and the TUI: "saved 82% on 3 successful runs"."""
    count = stats.runs_succeeded
    if not count:
        return "no successful run yet"
    runs = f"{count} successful run{'' if count == 1 else 's'}"
    if stats.baseline_cost_usd is None:
        return f"unknown on {runs}: no price is known for the baseline model"
    if stats.savings_rate is None:
        return f"nothing to compare on {runs}: they made no priced model call"
    if stats.savings_rate < 0:
        return f"cost {-100 * stats.savings_rate:.0f}% more on {runs}"
    return f"saved {100 * stats.savings_rate:.0f}% on {runs}"


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _grouped(ledger: Ledger, column: str) -> dict[str, float]:
    rows = ledger.query(f"SELECT COALESCE({column}, '-') AS k, SUM(cost_usd) AS c FROM calls GROUP BY k ORDER BY c DESC")
    return {row["k"]: float(row["c"] or 0) for row in rows}


def baseline_cost(ledger: Ledger, baseline_price: Price, *, successful_only: bool = False) -> float:
    """What the same successful, non-cached calls would have cost at the baseline model's prices; with
    `successful_only`, only the calls of runs that succeeded.

    Cache hits are left out on both sides: the response cache would have served them whichever model was used.
    """
    where = f" AND run_id IN ({SUCCEEDED_RUNS})" if successful_only else ""
    rows = ledger.query(
        "SELECT prompt_tokens, completion_tokens, cached_read_tokens, cache_write_tokens FROM calls "
        "WHERE status = 'ok' AND cache_hit = 0" + where
    )
    return sum(cost_usd(baseline_price, Usage(**dict(row))) for row in rows)


def _run_counts(ledger: Ledger) -> tuple[int, int, int]:
    """How many runs there are, how many of them finished, and how many succeeded."""
    marks = ", ".join("?" for _ in IN_PROGRESS)
    finished = int(ledger.scalar(f"SELECT COUNT(*) FROM runs WHERE status NOT IN ({marks})", *IN_PROGRESS))
    succeeded = int(ledger.scalar(f"SELECT COUNT(*) FROM ({SUCCEEDED_RUNS})"))
    return int(ledger.scalar("SELECT COUNT(*) FROM runs")), finished, succeeded


def _savings(ledger: Ledger, baseline_price: Price | None) -> tuple[float, float | None, float | None]:
    """The spend of the successful runs (failed calls included), its baseline, and the fraction saved."""
    spent = ledger.scalar(f"SELECT SUM(cost_usd) FROM calls WHERE run_id IN ({SUCCEEDED_RUNS})")
    baseline = baseline_cost(ledger, baseline_price, successful_only=True) if baseline_price is not None else None
    return spent, baseline, (1 - spent / baseline) if baseline else None


def compute_stats(ledger: Ledger, baseline_price: Price | None) -> Stats:
    """All the figures of `aether stats`. `baseline_price` is the orchestrator model's (None if unknown)."""
    runs, finished, succeeded = _run_counts(ledger)
    successful_cost, baseline, savings = _savings(ledger, baseline_price)
    calls = int(ledger.scalar("SELECT COUNT(*) FROM calls WHERE status = 'ok'"))
    hits = int(ledger.scalar("SELECT COUNT(*) FROM calls WHERE cache_hit = 1"))
    first_try = ledger.query(
        "SELECT SUM(validation_first_try = 1) AS ok, COUNT(validation_first_try) AS n FROM tasks"
    )[0]
    accepted = ledger.query("SELECT SUM(accepted) AS ok, COUNT(*) AS n FROM outcomes")[0]
    ttfts = [float(r[0]) for r in ledger.query("SELECT ttft_s FROM calls WHERE ttft_s IS NOT NULL AND cache_hit = 0")]
    return Stats(
        total_cost_usd=ledger.scalar("SELECT SUM(cost_usd) FROM calls"),
        runs=runs,
        runs_finished=finished,
        runs_succeeded=succeeded,
        success_rate=_ratio(succeeded, finished),
        successful_cost_usd=successful_cost,
        baseline_cost_usd=baseline,
        savings_rate=savings,
        calls=calls,
        cache_hits=hits,
        cache_hit_rate=_ratio(hits, calls),
        by_model=_grouped(ledger, "alias"),
        by_agent=_grouped(ledger, "agent"),
        by_day=_grouped(ledger, "day"),
        cost_per_run_usd=_ratio(ledger.scalar("SELECT SUM(cost_usd) FROM calls WHERE run_id IS NOT NULL"), runs),
        first_try_pass_rate=_ratio(float(first_try["ok"] or 0), float(first_try["n"] or 0)),
        acceptance_rate=_ratio(float(accepted["ok"] or 0), float(accepted["n"] or 0)),
        ttft_p50_s=_percentile(ttfts, 0.5),
        ttft_p95_s=_percentile(ttfts, 0.95),
    )
