"""Read models over the ledger: run history, one run's details, and the router's outcome statistics."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from aetherflow.ledger.store import Ledger


class RunRow(BaseModel):
    """One line of `aether runs`."""

    run_id: str
    request: str
    status: str
    started_at: float
    ended_at: float | None
    cost_usd: float
    calls: int
    accepted: int
    rejected: int
    message: str | None = None


class RunDetail(BaseModel):
    """Everything `aether runs show ID` prints."""

    run: RunRow
    plan: dict[str, Any] | None
    summary: str | None
    tasks: list[dict[str, Any]]
    calls: list[dict[str, Any]]


_RUN_SELECT = """
SELECT r.run_id, r.request, r.status, r.started_at, r.ended_at, r.message,
       (SELECT COALESCE(SUM(cost_usd), 0) FROM calls c WHERE c.run_id = r.run_id) AS cost_usd,
       (SELECT COUNT(*) FROM calls c WHERE c.run_id = r.run_id) AS calls,
       (SELECT COUNT(*) FROM outcomes o WHERE o.run_id = r.run_id AND o.accepted = 1) AS accepted,
       (SELECT COUNT(*) FROM outcomes o WHERE o.run_id = r.run_id AND o.accepted = 0) AS rejected
FROM runs r
"""


def list_runs(ledger: Ledger, limit: int = 20) -> list[RunRow]:
    """The most recent runs first."""
    rows = ledger.query(_RUN_SELECT + " ORDER BY r.started_at DESC LIMIT ?", limit)
    return [RunRow(**dict(row)) for row in rows]


def find_run_id(ledger: Ledger, prefix: str) -> str | None:
    """The run whose id starts with `prefix` when exactly one does (ids are long; users type a prefix)."""
    rows = ledger.query("SELECT run_id FROM runs WHERE run_id LIKE ? || '%' LIMIT 2", prefix)
    return rows[0]["run_id"] if len(rows) == 1 else None


def run_detail(ledger: Ledger, run_id: str) -> RunDetail | None:
    """The run, its plan, summary, subtasks and calls; None when unknown."""
    rows = ledger.query(_RUN_SELECT + " WHERE r.run_id = ?", run_id)
    if not rows:
        return None
    extra = ledger.query("SELECT plan, summary FROM runs WHERE run_id = ?", run_id)[0]
    tasks = ledger.query("SELECT * FROM tasks WHERE run_id = ? ORDER BY started_at", run_id)
    calls = ledger.query("SELECT * FROM calls WHERE run_id = ? ORDER BY ts", run_id)
    return RunDetail(
        run=RunRow(**dict(rows[0])),
        plan=json.loads(extra["plan"]) if extra["plan"] else None,
        summary=extra["summary"],
        tasks=[dict(t) for t in tasks],
        calls=[dict(c) for c in calls],
    )


def past_solutions(ledger: Ledger, limit: int = 5) -> list[str]:
    """Summaries of recent applied (and not undone) runs, the brief's knowledge base of past solutions."""
    rows = ledger.query(
        "SELECT request, summary FROM runs WHERE status = 'applied' AND undone_at IS NULL AND summary IS NOT NULL "
        "ORDER BY started_at DESC LIMIT ?",
        limit,
    )
    return [f"Request: {row['request']}\nOutcome: {row['summary']}" for row in rows]


class LedgerOutcomeStats:
    """The router's view of past outcomes: per (task type, model alias), successes and samples."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def success_rates(self) -> dict[tuple[str, str], tuple[int, int]]:
        rows = self._ledger.query(
            "SELECT task_type, alias, SUM(status = 'done') AS ok, COUNT(*) AS n FROM tasks "
            "WHERE task_type IS NOT NULL AND alias IS NOT NULL AND status IN ('done', 'failed') "
            "GROUP BY task_type, alias"
        )
        return {(row["task_type"], row["alias"]): (int(row["ok"]), int(row["n"])) for row in rows}
