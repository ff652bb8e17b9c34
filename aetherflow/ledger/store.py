"""SQLite ledger of every model call, fed by gateway events.

It is what the daily budget is measured against and what `aether stats` reads. One file per repository under
`.aetherflow/`; WAL mode so a reader (the TUI, `aether stats`) never blocks a writer.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from pathlib import Path

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
"""


def _day(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).date().isoformat()


class Ledger:
    """Append-only record of calls. Safe to use from several threads."""

    def __init__(self, db_path: Path) -> None:
        self.path = db_path
        if db_path.parent.name == paths.STATE_DIR_NAME:
            paths.ensure_state_dir(db_path.parent.parent)
        else:
            db_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

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
        self._insert(
            call_id=e.call_id, ts=e.ts, day=_day(e.ts), run_id=e.run_id, task_id=e.task_id, agent=e.agent,
            alias=e.alias, model_id=e.model_id, status="ok", prompt_tokens=u.prompt_tokens,
            completion_tokens=u.completion_tokens, cached_read_tokens=u.cached_read_tokens,
            cache_write_tokens=u.cache_write_tokens, cost_usd=e.cost_usd, latency_s=e.latency_s, ttft_s=e.ttft_s,
            cache_hit=int(e.cache_hit), retries=e.retries, fallbacks=json.dumps(e.fallbacks),
            redactions=e.redactions,
        )

    def record_failed(self, e: CallFailed) -> None:
        """Store one failed call with whatever it cost before failing."""
        self._insert(
            call_id=e.call_id, ts=e.ts, day=_day(e.ts), run_id=e.run_id, task_id=e.task_id, alias=e.alias,
            status="failed", cost_usd=e.cost_usd, error=e.error,
        )

    def _insert(self, **columns: object) -> None:
        names = ", ".join(columns)
        marks = ", ".join("?" for _ in columns)
        with self._lock:
            self._db.execute(f"INSERT INTO calls ({names}) VALUES ({marks})", tuple(columns.values()))

    def spent_today_usd(self) -> float:
        """Total cost of today's calls (local time), failed ones included."""
        return self._scalar("SELECT COALESCE(SUM(cost_usd), 0) FROM calls WHERE day = ?", _day(dt.datetime.now().timestamp()))

    def total_cost_usd(self, run_id: str | None = None) -> float:
        """Total cost recorded, for one run or overall."""
        if run_id is None:
            return self._scalar("SELECT COALESCE(SUM(cost_usd), 0) FROM calls")
        return self._scalar("SELECT COALESCE(SUM(cost_usd), 0) FROM calls WHERE run_id = ?", run_id)

    def call_count(self) -> int:
        """Number of calls recorded."""
        return int(self._scalar("SELECT COUNT(*) FROM calls"))

    def _scalar(self, sql: str, *args: object) -> float:
        with self._lock:
            row = self._db.execute(sql, args).fetchone()
        return float(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
