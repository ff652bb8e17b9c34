"""`aether stats` as a user sees it over ledgers built with the store's API: savings only on successful runs,
task success beside spend, and an old ledger that still reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomlkit
from cli_support import AetherRun, write_trusted_config
from ledger.ledger_support import (
    MIXED_BASELINE,
    MIXED_SUCCESSFUL_COST,
    MIXED_TOTAL,
    add_run,
    mixed_ledger,
    write_old_ledger,
)

from aetherflow.ledger.store import Ledger
from aetherflow.testing.settings import SCRIPTED_KEY, SCRIPTED_KEY_ENV, scripted_flags

ENV = {SCRIPTED_KEY_ENV: SCRIPTED_KEY}


def ledger_in(repo: Path) -> Path:
    """Configure the scripted catalogue (orchestrator on "strong", $3 / $15 per million) and name the ledger."""
    write_trusted_config(repo, tomlkit.dumps(scripted_flags("http://127.0.0.1:9/v1")))
    return repo / ".aetherflow" / "ledger.sqlite"


def fill(repo: Path, build) -> None:  # type: ignore[no-untyped-def]
    ledger = Ledger(ledger_in(repo))
    build(ledger)
    ledger.close()


def row(stdout: str, label: str) -> str:
    """The value printed beside `label` in the summary table (columns are separated by "│")."""
    line = next(line for line in stdout.splitlines() if line.strip().startswith(label))
    return line.split("│", 1)[1].strip()


def test_savings_and_success_count_only_successful_runs(repo: Path, aether: AetherRun) -> None:
    fill(repo, mixed_ledger)
    figures = json.loads(aether("stats", "--json", env=ENV).stdout)
    shown = aether("stats", env=ENV)

    saved = 1 - MIXED_SUCCESSFUL_COST / MIXED_BASELINE
    assert (figures["runs"], figures["runs_finished"], figures["runs_succeeded"]) == (9, 8, 3)
    assert figures["success_rate"] == 0.375
    assert figures["total_cost_usd"] == round(MIXED_TOTAL, 6)
    assert figures["successful_cost_usd"] == round(MIXED_SUCCESSFUL_COST, 6)
    assert figures["baseline_cost_usd"] == round(MIXED_BASELINE, 6)
    assert figures["savings_rate"] == pytest.approx(saved)
    assert shown.returncode == 0, shown.stderr
    assert row(shown.stdout, "total spend") == f"${MIXED_TOTAL:.4f}"
    assert row(shown.stdout, "task success") == "3 of 8 finished runs (38%)"
    assert row(shown.stdout, "spend of successful runs") == f"${MIXED_SUCCESSFUL_COST:.4f}"
    assert row(shown.stdout, "same calls on strong alone") == f"${MIXED_BASELINE:.4f}"
    assert row(shown.stdout, "savings") == f"saved {100 * saved:.0f}% on 3 successful runs"


def test_a_free_model_that_produced_nothing_is_not_a_saving(repo: Path, aether: AetherRun) -> None:
    def build(ledger: Ledger) -> None:
        add_run(ledger, "empty", "review", checks=None, cost=0.0, prompt=4000, completion=1000)
        add_run(ledger, "broken", "applied", checks=False, cost=0.0021, prompt=1000, completion=100)

    fill(repo, build)
    figures = json.loads(aether("stats", "--json", env=ENV).stdout)
    shown = aether("stats", env=ENV)

    assert (figures["runs_finished"], figures["runs_succeeded"], figures["success_rate"]) == (2, 0, 0.0)
    assert figures["savings_rate"] is None and figures["baseline_cost_usd"] == 0.0
    assert figures["total_cost_usd"] == 0.0021
    assert row(shown.stdout, "savings") == "no successful run yet"
    assert row(shown.stdout, "task success") == "0 of 2 finished runs (0%)"
    assert "100%" not in shown.stdout


def test_an_old_ledger_opens_and_reports(repo: Path, aether: AetherRun) -> None:
    write_old_ledger(ledger_in(repo))
    figures = json.loads(aether("stats", "--json", env=ENV).stdout)
    shown = aether("stats", env=ENV)

    assert (figures["runs"], figures["runs_finished"], figures["runs_succeeded"]) == (2, 2, 1)
    assert figures["total_cost_usd"] == 0.002 and figures["successful_cost_usd"] == 0.002
    assert figures["baseline_cost_usd"] == 0.0045 and figures["savings_rate"] == pytest.approx(1 - 0.002 / 0.0045)
    assert shown.returncode == 0, shown.stderr
    assert row(shown.stdout, "savings") == "saved 56% on 1 successful run"
    assert row(shown.stdout, "task success") == "1 of 2 finished runs (50%)"
