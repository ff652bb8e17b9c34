"""`aether stats` and `aether stats --routing` over a ledger filled by a real (scripted) run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import AetherRun
from test_run_cmd import ENV, setup_project

from aetherflow.testing.server import ScriptedServer


def test_stats_report_spend_savings_and_rates_after_an_accepted_run(repo: Path, aether: AetherRun,
                                                                    scripted_server: ScriptedServer) -> None:
    setup_project(repo, scripted_server)
    ran = aether("run", "scripted request", "--yes", "--no-tui", env=ENV)
    assert ran.returncode == 0, ran.stderr
    calls = scripted_server.completion_requests()

    figures = json.loads(aether("stats", "--json", env=ENV).stdout)
    shown = aether("stats", env=ENV)

    assert figures["runs"] == 1 and figures["calls"] == len(calls)
    assert figures["baseline_alias"] == "strong"
    # The run was applied, so it is the one successful run the savings are based on.
    assert (figures["runs_finished"], figures["runs_succeeded"], figures["success_rate"]) == (1, 1, 1.0)
    assert figures["successful_cost_usd"] == figures["total_cost_usd"]
    # Every call on "fast" is cheaper than on "strong" (the orchestrator's model), so the run saved money.
    assert 0 < figures["total_cost_usd"] < figures["baseline_cost_usd"] and 0 < figures["savings_rate"] < 1
    assert set(figures["by_model"]) == {"fast", "strong"} and {"orchestrator", "coder"} <= set(figures["by_agent"])
    assert figures["acceptance_rate"] == 1.0 and figures["first_try_pass_rate"] == 1.0
    assert figures["cache_hit_rate"] == 0.0 and figures["ttft_p50_s"] is not None
    assert figures["cost_per_run_usd"] == pytest.approx(figures["total_cost_usd"])
    assert shown.returncode == 0, shown.stderr
    assert "1 of 1 finished run (100%)" in shown.stdout
    assert f"saved {100 * figures['savings_rate']:.0f}% on 1 successful run" in shown.stdout
    for label in ("total spend", "task success", "same calls on strong alone", "savings", "cache hit rate",
                  "first-try validation pass rate", "acceptance rate", "p50 / p95", "Spend by agent",
                  "Spend by model", "Spend by day"):
        assert label in shown.stdout, label


def test_stats_routing_shows_the_rules_with_recorded_outcomes(repo: Path, aether: AetherRun,
                                                              scripted_server: ScriptedServer) -> None:
    setup_project(repo, scripted_server)
    assert aether("run", "scripted request", "--json", env=ENV).returncode == 0

    rows = json.loads(aether("stats", "--routing", "--json", env=ENV).stdout)
    table = aether("stats", "--routing", env=ENV)

    local = {(r["task_type"], r["slot"]): r for r in rows if r["task_type"] == "local_refactor"}
    assert local[("local_refactor", "primary")]["agent"] == "editor"
    assert local[("local_refactor", "secondary")]["alias"] == "fast"
    # Both subtasks were local_refactor on "fast" and succeeded.
    assert (local[("local_refactor", "secondary")]["samples"], local[("local_refactor", "secondary")]["success_rate"]) == (2, 1.0)
    assert {r["task_type"] for r in rows} >= {"module_generation", "debugging", "review"}
    assert table.returncode == 0 and "Routing table" in table.stdout and "local_refactor" in table.stdout


def test_stats_without_calls_and_outside_a_repository(repo: Path, aether: AetherRun, tmp_path: Path) -> None:
    empty = aether("stats")
    outside_dir = tmp_path / "plain"
    outside_dir.mkdir()
    outside = aether("stats", cwd=outside_dir)

    assert empty.returncode == 0 and "No calls recorded yet" in empty.stdout
    assert outside.returncode == 2 and "not inside a git repository" in outside.stderr
