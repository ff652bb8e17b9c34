"""SQLite ledger: every model call (fed by gateway events), every run, subtask and review outcome.

It is what the daily budget is measured against, what `aether runs` and `aether stats` read, and what the router
learns from. One file per repository under `.aetherflow/`; WAL mode so a reader (the TUI, `aether stats`) never
blocks a writer. Reads live in `queries.py` and aggregates in `stats.py`.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from aetherflow import paths
from aetherflow.events import CallFailed, CallFinished, Event, EventBus

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL,
    ts REAL NOT NULL,
    day TEXT NOT NULL,
    run_id TEXT,
    task_id TEXT,
    agent TEXT,
    alias TEXT NOT NULL,
    model_id TEXT,
    status TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cached_read_tokens INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    latency_s REAL,
    ttft_s REAL,
    cache_hit INTEGER NOT NULL DEFAULT 0,
    retries INTEGER NOT NULL DEFAULT 0,
    fallbacks TEXT NOT NULL DEFAULT '[]',
    redactions INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE INDEX IF NOT EXISTS calls_day ON calls(day);
CREATE INDEX IF NOT EXISTS calls_run ON calls(run_id);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    request TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    budget_usd REAL,
    plan TEXT,
    summary TEXT,
    message TEXT
);
CREATE TABLE IF NOT EXISTS tasks (
    run_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    task_type TEXT,
    agent TEXT,
    alias TEXT,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1,
    validation_first_try INTEGER,
    error TEXT,
    started_at REAL,
    ended_at REAL,
    cost_usd REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, task_id)
);
CREATE TABLE IF NOT EXISTS outcomes (
    run_id TEXT NOT NULL,
    path TEXT NOT NULL,
    accepted INTEGER NOT NULL,
    ts REAL NOT NULL,
    PRIMARY KEY (run_id, path)
);
"""

# Columns added after the first release, added on open to a ledger that lacks them (ALTER TABLE ADD COLUMN keeps
# every existing row, with NULL in the new column). Never remove or rename one: old ledgers must stay readable.
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("runs", "checks_passed", "INTEGER"),  # 1 passed, 0 failed, NULL no checks configured (or not recorded)
    ("runs", "undone_at", "REAL"),  # when `aether undo` reverted the run's applied change
)


def day_of(ts: float) -> str:
    """The local calendar day of a timestamp, as the ledger groups spend."""
    return dt.datetime.fromtimestamp(ts).date().isoformat()


class Ledger:
    """Append-mostly record of calls, runs, subtasks and outcomes. Safe to use from several threads."""

    def __init__(self, db_path: Path) -> None:
        self.path = db_path
        if db_path.parent.name == paths.STATE_DIR_NAME:
            paths.ensure_state_dir(db_path.parent.parent)  # refuses a `.aetherflow` that links elsewhere
        else:
            db_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """Bring a ledger written by an older version up to ADDED_COLUMNS. The write lock is taken only when a
        column is missing, and the check is repeated under it, so two processes opening the same old ledger do
        not both add a column."""
        if not self._missing_columns():
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for table, column, declaration in self._missing_columns():
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        except sqlite3.Error:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _missing_columns(self) -> list[tuple[str, str, str]]:
        present: dict[str, set[str]] = {}
        for table, _, _ in ADDED_COLUMNS:
            if table not in present:
                present[table] = {row["name"] for row in self._db.execute(f"PRAGMA table_info({table})")}
        return [added for added in ADDED_COLUMNS if added[1] not in present[added[0]]]

    # --- events -------------------------------------------------------------------------------------------

    def attach(self, bus: EventBus) -> None:
        """Record every finished or failed call published on `bus`."""
        bus.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, CallFinished):
            self.record_finished(event)
        elif isinstance(event, CallFailed):
            self.record_failed(event)

    def record_finished(self, e: CallFinished) -> None:
        """Store one successful call."""
        u = e.usage
        self._insert("calls", dict(
            call_id=e.call_id, ts=e.ts, day=day_of(e.ts), run_id=e.run_id, task_id=e.task_id, agent=e.agent,
            alias=e.alias, model_id=e.model_id, status="ok", prompt_tokens=u.prompt_tokens,
            completion_tokens=u.completion_tokens, cached_read_tokens=u.cached_read_tokens,
            cache_write_tokens=u.cache_write_tokens, cost_usd=e.cost_usd, latency_s=e.latency_s, ttft_s=e.ttft_s,
            cache_hit=int(e.cache_hit), retries=e.retries, fallbacks=json.dumps(e.fallbacks),
            redactions=e.redactions,
        ))

    def record_failed(self, e: CallFailed) -> None:
        """Store one failed call with whatever it cost before failing."""
        self._insert("calls", dict(
            call_id=e.call_id, ts=e.ts, day=day_of(e.ts), run_id=e.run_id, task_id=e.task_id, alias=e.alias,
            status="failed", cost_usd=e.cost_usd, error=e.error,
        ))

    # --- runs, tasks, outcomes ------------------------------------------------------------------------------

    def start_run(self, run_id: str, request: str, budget_usd: float | None) -> None:
        """Record a new run (or restart a resumed one, whose earlier checks no longer say anything)."""
        self._upsert("runs", dict(run_id=run_id, request=request, status="planning", started_at=time.time(),
                                  budget_usd=budget_usd, checks_passed=None), key=("run_id",))

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set some of: status, ended_at, plan (a dict, stored as JSON), summary, message, checks_passed,
        undone_at."""
        if "plan" in fields and not isinstance(fields["plan"], str):
            fields["plan"] = json.dumps(fields["plan"])
        sets = ", ".join(f"{name} = ?" for name in fields)
        with self._lock:
            self._db.execute(f"UPDATE runs SET {sets} WHERE run_id = ?", (*fields.values(), run_id))

    def record_checks(self, run_id: str, passed: bool | None) -> None:
        """Whether the run's final checks passed; None when no checks are configured. Stats count a run as
        successful only when its change was applied and this is not False."""
        self.update_run(run_id, checks_passed=None if passed is None else int(passed))

    def record_undo(self, run_id: str) -> None:
        """`aether undo` reverted this run's applied change: it no longer counts as a successful run."""
        self.update_run(run_id, undone_at=time.time())

    def record_task(self, run_id: str, task_id: str, **fields: Any) -> None:
        """Insert or replace a subtask's row (task_type, agent, alias, status, attempts, validation_first_try,
        error, started_at, ended_at, cost_usd)."""
        self._upsert("tasks", dict(run_id=run_id, task_id=task_id, **fields), key=("run_id", "task_id"))

    def record_outcomes(self, run_id: str, accepted: list[str], rejected: list[str]) -> None:
        """What the user accepted and rejected in review."""
        now = time.time()
        for path, ok in [(p, 1) for p in accepted] + [(p, 0) for p in rejected]:
            self._upsert("outcomes", dict(run_id=run_id, path=path, accepted=ok, ts=now), key=("run_id", "path"))

    # --- plumbing -----------------------------------------------------------------------------------------

    def _insert(self, table: str, columns: dict[str, Any]) -> None:
        names = ", ".join(columns)
        marks = ", ".join("?" for _ in columns)
        with self._lock:
            self._db.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", tuple(columns.values()))

    def _upsert(self, table: str, columns: dict[str, Any], key: tuple[str, ...]) -> None:
        names = ", ".join(columns)
        marks = ", ".join("?" for _ in columns)
        updates = ", ".join(f"{n} = excluded.{n}" for n in columns if n not in key)
        sql = f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
        with self._lock:
            self._db.execute(sql, tuple(columns.values()))

    def query(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        """Run a read query under the ledger's lock (used by queries.py and stats.py)."""
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def scalar(self, sql: str, *args: Any) -> float:
        """The first column of the first row of a read query, as a float (0 when NULL)."""
        rows = self.query(sql, *args)
        return float(rows[0][0] or 0) if rows else 0.0

    def spent_today_usd(self) -> float:
        """Total cost of today's calls (local time), failed ones included."""
        return self.scalar("SELECT SUM(cost_usd) FROM calls WHERE day = ?", day_of(time.time()))

    def total_cost_usd(self, run_id: str | None = None) -> float:
        """Total cost recorded, for one run or overall."""
        if run_id is None:
            return self.scalar("SELECT SUM(cost_usd) FROM calls")
        return self.scalar("SELECT SUM(cost_usd) FROM calls WHERE run_id = ?", run_id)

    def call_count(self, run_id: str | None = None) -> int:
        """Number of calls recorded, for one run or overall."""
        if run_id is None:
            return int(self.scalar("SELECT COUNT(*) FROM calls"))
        return int(self.scalar("SELECT COUNT(*) FROM calls WHERE run_id = ?", run_id))

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()
