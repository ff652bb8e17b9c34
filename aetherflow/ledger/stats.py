"""`aether stats`: spend, savings against the strongest model alone, cache hits, pass and acceptance rates."""

from __future__ import annotations

from pydantic import BaseModel

from aetherflow.config.models import Price
from aetherflow.ledger.store import Ledger
from aetherflow.llm.pricing import cost_usd
from aetherflow.llm.types import Usage


class Stats(BaseModel):
    """Aggregates over the whole ledger (or one day range)."""

    total_cost_usd: float
    baseline_cost_usd: float | None
    savings_pct: float | None
    calls: int
    cache_hits: int
    cache_hit_rate: float | None
    by_model: dict[str, float]
    by_agent: dict[str, float]
    by_day: dict[str, float]
    runs: int
    cost_per_run_usd: float | None
    first_try_pass_rate: float | None
    acceptance_rate: float | None
    ttft_p50_s: float | None
    ttft_p95_s: float | None


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


def baseline_cost(ledger: Ledger, baseline_price: Price) -> float:
    """What the same successful, non-cached calls would have cost at the baseline model's prices.

    Cache hits are left out on both sides: the response cache would have served them whichever model was used.
    """
    rows = ledger.query(
        "SELECT prompt_tokens, completion_tokens, cached_read_tokens, cache_write_tokens FROM calls "
        "WHERE status = 'ok' AND cache_hit = 0"
    )
    return sum(cost_usd(baseline_price, Usage(**dict(row))) for row in rows)


def compute_stats(ledger: Ledger, baseline_price: Price | None) -> Stats:
    """All the figures of `aether stats`. `baseline_price` is the orchestrator model's (None if unknown)."""
    total = ledger.scalar("SELECT SUM(cost_usd) FROM calls")
    calls = int(ledger.scalar("SELECT COUNT(*) FROM calls WHERE status = 'ok'"))
    hits = int(ledger.scalar("SELECT COUNT(*) FROM calls WHERE cache_hit = 1"))
    baseline = baseline_cost(ledger, baseline_price) if baseline_price is not None else None
    runs = int(ledger.scalar("SELECT COUNT(*) FROM runs"))
    first_try = ledger.query(
        "SELECT SUM(validation_first_try = 1) AS ok, COUNT(validation_first_try) AS n FROM tasks"
    )[0]
    accepted = ledger.query("SELECT SUM(accepted) AS ok, COUNT(*) AS n FROM outcomes")[0]
    ttfts = [float(r[0]) for r in ledger.query("SELECT ttft_s FROM calls WHERE ttft_s IS NOT NULL AND cache_hit = 0")]
    return Stats(
        total_cost_usd=total,
        baseline_cost_usd=baseline,
        savings_pct=(100.0 * (1 - total / baseline)) if baseline else None,
        calls=calls,
        cache_hits=hits,
        cache_hit_rate=_ratio(hits, calls),
        by_model=_grouped(ledger, "alias"),
        by_agent=_grouped(ledger, "agent"),
        by_day=_grouped(ledger, "day"),
        runs=runs,
        cost_per_run_usd=_ratio(ledger.scalar("SELECT SUM(cost_usd) FROM calls WHERE run_id IS NOT NULL"), runs),
        first_try_pass_rate=_ratio(float(first_try["ok"] or 0), float(first_try["n"] or 0)),
        acceptance_rate=_ratio(float(accepted["ok"] or 0), float(accepted["n"] or 0)),
        ttft_p50_s=_percentile(ttfts, 0.5),
        ttft_p95_s=_percentile(ttfts, 0.95),
    )
