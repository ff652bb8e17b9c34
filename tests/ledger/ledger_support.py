"""Builders for ledgers in the state a run leaves them, through the store's own API (shared by the ledger and
`aether stats` tests)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Literal

from aetherflow.config.models import Price
from aetherflow.events import CallFinished
from aetherflow.ledger.store import Ledger
from aetherflow.llm.types import Usage

# The scripted catalogue's "strong" price (aetherflow.testing.settings.STRONG_PRICE): $3 in, $15 out per million.
STRONG = Price(input=3.0, output=15.0)

RunEnd = Literal["applied", "review", "failed", "discarded", "cancelled", "running"]


def call(run_id: str | None, call_id: str, *, cost: float, prompt: int, completion: int, alias: str = "fast",
         cache_hit: bool = False) -> CallFinished:
    """A finished call of `run_id` on `alias` (the cheap model unless told)."""
    return CallFinished(
        call_id=call_id, alias=alias, model_id=f"openai/{alias}", agent="coder", run_id=run_id,
        usage=Usage(prompt_tokens=prompt, completion_tokens=completion), cost_usd=cost, latency_s=1.0,
        ttft_s=0.2, cache_hit=cache_hit,
    )


def add_run(ledger: Ledger, run_id: str, status: RunEnd, *, checks: bool | None = None, cost: float = 0.0,
            prompt: int = 0, completion: int = 0, accepted: list[str] | None = None,
            rejected: list[str] | None = None) -> None:
    """One run as the pipeline records it: started, one model call, its final checks, the review, its end."""
    ledger.start_run(run_id, f"request {run_id}", budget_usd=1.0)
    ledger.record_finished(call(run_id, f"{run_id}-c1", cost=cost, prompt=prompt, completion=completion))
    if status != "running":
        ledger.record_checks(run_id, checks)
    if accepted or rejected:
        ledger.record_outcomes(run_id, accepted or [], rejected or [])
    ledger.update_run(run_id, status=status)


def strong_cost(prompt: int, completion: int) -> float:
    """What `prompt` and `completion` tokens cost on STRONG."""
    return (prompt * STRONG.input + completion * STRONG.output) / 1_000_000


def mixed_ledger(ledger: Ledger) -> None:
    """Nine runs: three succeeded (applied with checks passed; applied without checks; accepted in a review not yet
    marked applied), five finished without success, one still running."""
    add_run(ledger, "ok-checked", "applied", checks=True, cost=0.002, prompt=1000, completion=100,
            accepted=["a.py"])
    add_run(ledger, "ok-unchecked", "applied", checks=None, cost=0.001, prompt=500, completion=50)
    add_run(ledger, "ok-accepted", "review", checks=True, cost=0.0005, prompt=200, completion=20,
            accepted=["b.py"])
    # A free local model that produced nothing: the "saved 100%" of old.
    add_run(ledger, "empty", "review", checks=None, cost=0.0, prompt=4000, completion=1000)
    add_run(ledger, "checks-failed", "applied", checks=False, cost=0.003, prompt=2000, completion=200,
            accepted=["c.py"])
    add_run(ledger, "failed", "failed", cost=0.0007, prompt=300, completion=30)
    add_run(ledger, "discarded", "discarded", checks=True, cost=0.0004, prompt=100, completion=10,
            rejected=["d.py"])
    add_run(ledger, "cancelled", "cancelled", cost=0.0001, prompt=50, completion=5)
    add_run(ledger, "in-progress", "running", cost=0.0002, prompt=80, completion=8)


MIXED_TOTAL = 0.002 + 0.001 + 0.0005 + 0.0 + 0.003 + 0.0007 + 0.0004 + 0.0001 + 0.0002
MIXED_SUCCESSFUL_COST = 0.002 + 0.001 + 0.0005
MIXED_BASELINE = strong_cost(1000, 100) + strong_cost(500, 50) + strong_cost(200, 20)

# The ledger schema as the code before `checks_passed` and `undone_at` created it (runs, calls, tasks, outcomes).
OLD_SCHEMA = """
CREATE TABLE calls (
    id INTEGER PRIMARY KEY, call_id TEXT NOT NULL, ts REAL NOT NULL, day TEXT NOT NULL, run_id TEXT, task_id TEXT,
    agent TEXT, alias TEXT NOT NULL, model_id TEXT, status TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0,
    cached_read_tokens INTEGER NOT NULL DEFAULT 0, cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0, latency_s REAL, ttft_s REAL, cache_hit INTEGER NOT NULL DEFAULT 0,
    retries INTEGER NOT NULL DEFAULT 0, fallbacks TEXT NOT NULL DEFAULT '[]', redactions INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE INDEX calls_day ON calls(day);
CREATE INDEX calls_run ON calls(run_id);
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY, request TEXT NOT NULL, status TEXT NOT NULL, started_at REAL NOT NULL, ended_at REAL,
    budget_usd REAL, plan TEXT, summary TEXT, message TEXT
);
CREATE TABLE tasks (
    run_id TEXT NOT NULL, task_id TEXT NOT NULL, task_type TEXT, agent TEXT, alias TEXT, status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1, validation_first_try INTEGER, error TEXT, started_at REAL, ended_at REAL,
    cost_usd REAL NOT NULL DEFAULT 0, PRIMARY KEY (run_id, task_id)
);
CREATE TABLE outcomes (
    run_id TEXT NOT NULL, path TEXT NOT NULL, accepted INTEGER NOT NULL, ts REAL NOT NULL,
    PRIMARY KEY (run_id, path)
);
"""


def write_old_ledger(path: Path) -> None:
    """A ledger as the previous version left it: an applied run and a run that produced nothing, both with calls."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.execute("INSERT INTO runs (run_id, request, status, started_at, ended_at, summary) VALUES "
               "('old-applied', 'add a flag', 'applied', 1.0, 2.0, 'Added --flag.'), "
               "('old-empty', 'do nothing', 'review', 3.0, 4.0, NULL)")
    db.execute("INSERT INTO calls (call_id, ts, day, run_id, alias, status, prompt_tokens, completion_tokens, "
               "cost_usd) VALUES ('c1', 1.5, '2026-01-01', 'old-applied', 'fast', 'ok', 1000, 100, 0.002), "
               "('c2', 3.5, '2026-01-01', 'old-empty', 'local', 'ok', 5000, 500, 0.0)")
    db.commit()
    db.close()
