"""`aether plan` and `aether run` as a user runs them: a subprocess in a git repository whose aetherflow.toml points
every model at the scripted server (a scripted "team": planner, agents, summary)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cli_support import PROJECT_ROOT, AetherRun, write_trusted_config
from orchestrator.pipeline_support import make_repo, plan_json, scripted_config_toml, task, team_script, tree_state

from aetherflow.testing.script import Fault, RecordedRequest, Reply
from aetherflow.testing.server import ScriptedServer

ENV = {"SCRIPTED_API_KEY": "test-key"}
FILES = {
    "app.py": "def greet(name):\n    return 'hi ' + name\n",
    "util.py": "def double(x):\n    return x * 2\n",
}
PLAN = plan_json([task("a", "MARK-A: make greet say hello"), task("b", "MARK-B: make double triple")])
EDITS = {
    "MARK-A": [{"path": "app.py", "search": "'hi '", "replace": "'hello '"}],
    "MARK-B": [{"path": "util.py", "search": "x * 2", "replace": "x * 3"}],
}
APP_AFTER = FILES["app.py"].replace("'hi '", "'hello '")
UTIL_AFTER = FILES["util.py"].replace("x * 2", "x * 3")


def setup_project(repo: Path, server: ScriptedServer, **overrides: object) -> Path:
    """Commit FILES and an aetherflow.toml for `server` into `repo`, and script the team."""
    write_trusted_config(repo, scripted_config_toml(server, **overrides))
    make_repo(repo, FILES)
    server.script = team_script(PLAN, EDITS)
    return repo


@pytest.fixture
def project(repo: Path, scripted_server: ScriptedServer) -> Path:
    return setup_project(repo, scripted_server)


def _about(marker: str, server: ScriptedServer) -> list[RecordedRequest]:
    return [r for r in server.requests if f"{marker}:" in r.message_text()]


# ---- aether plan -------------------------------------------------------------------------------------------


def test_plan_shows_the_routed_tree_and_json_with_estimated_cost(project: Path, aether: AetherRun) -> None:
    shown = aether("plan", "scripted request", env=ENV)
    as_json = aether("plan", "scripted request", "--json", env=ENV)

    assert shown.returncode == 0, shown.stderr
    assert "scripted plan" in shown.stdout and "MARK-A: make greet say hello" in shown.stdout
    assert "coder (fast)" in shown.stdout and "route:" in shown.stdout
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert [t["id"] for t in data["plan"]["tasks"]] == ["a", "b"]
    assert data["routes"]["a"]["alias"] == "fast" and data["routes"]["a"]["agent"] == "coder"
    assert data["estimated_cost_usd"] == pytest.approx(sum(r["estimated_cost_usd"] for r in data["routes"].values()))
    assert tree_state(project)[1] == ""  # nothing ran, nothing changed


# ---- aether run --------------------------------------------------------------------------------------------


def test_run_yes_applies_every_file_and_reports_summary_changes_and_cost(project: Path, aether: AetherRun) -> None:
    result = aether("run", "scripted request", "--yes", "--no-tui", env=ENV)

    assert result.returncode == 0, result.stderr
    assert (project / "app.py").read_text() == APP_AFTER and (project / "util.py").read_text() == UTIL_AFTER
    out = result.stdout
    assert "Scripted summary of the run." in out
    assert "mod app.py +1 -1" in out and "mod util.py +1 -1" in out
    assert "cost $" in out and "strong alone: $" in out and "saved" in out
    assert "Applied 2 file(s)" in out and "aether undo" in out
    assert "Traceback" not in result.stderr


def test_run_json_prints_one_object_and_applies_nothing(project: Path, aether: AetherRun) -> None:
    before = tree_state(project)

    result = aether("run", "scripted request", "--json", env=ENV)

    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["status"] == "review" and data["run_id"]
    assert [t["id"] for t in data["plan"]["tasks"]] == ["a", "b"] and set(data["routes"]) == {"a", "b"}
    assert {k: v["status"] for k, v in data["outcomes"].items()} == {"a": "done", "b": "done"}
    files = {f["path"]: f for f in data["changeset"]["files"]}
    assert "+    return 'hello ' + name" in files["app.py"]["diff"] and files["util.py"]["added"] == 1
    assert data["summary"] == "Scripted summary of the run." and data["checks"] == []
    assert data["cost"]["cost_usd"] > 0 and data["cost"]["baseline_alias"] == "strong"
    assert data["applied"] == [] and f"aether runs apply {data['run_id']}" in data["hint"]
    assert tree_state(project) == before


def test_run_json_with_yes_applies_and_lists_the_files(project: Path, aether: AetherRun) -> None:
    result = aether("run", "scripted request", "--json", "--yes", env=ENV)

    assert result.returncode == 0, result.stderr
    assert sorted(json.loads(result.stdout)["applied"]) == ["app.py", "util.py"]
    assert (project / "app.py").read_text() == APP_AFTER


def test_run_without_a_terminal_or_yes_applies_nothing_and_says_how_to_review(project: Path, aether: AetherRun) -> None:
    before = tree_state(project)

    result = aether("run", "scripted request", "--no-tui", env=ENV)

    assert result.returncode == 0, result.stderr
    assert "Nothing was applied" in result.stdout and "aether runs apply " in result.stdout
    assert tree_state(project) == before


def test_run_commit_commits_only_the_applied_files(project: Path, aether: AetherRun) -> None:
    result = aether("run", "scripted request", "--yes", "--commit", "--no-tui", env=ENV)

    assert result.returncode == 0, result.stderr
    log = subprocess.run(["git", "log", "-1", "--name-only", "--format=%s"], cwd=project, capture_output=True,
                         text=True, check=True).stdout.split()
    assert log[:2] == ["aether:", "scripted"] and {"app.py", "util.py"} <= set(log)
    assert tree_state(project)[1] == ""


# ---- bad input -----------------------------------------------------------------------------------------------


def test_run_refuses_a_missing_image_and_a_file_that_is_not_an_image(project: Path, aether: AetherRun) -> None:
    (project / "notes.txt").write_text("not a picture")

    missing = aether("run", "fix the layout", "--image", "shot.png", env=ENV)
    not_image = aether("run", "fix the layout", "--image", "notes.txt", env=ENV)

    assert missing.returncode == 2 and "--image shot.png: no such file" in missing.stderr
    assert not_image.returncode == 2 and "is not an image" in not_image.stderr
    assert "Traceback" not in missing.stderr + not_image.stderr


def test_run_needs_exactly_one_of_a_request_and_resume(project: Path, aether: AetherRun) -> None:
    neither = aether("run", env=ENV)
    unknown = aether("run", "--resume", "nope", env=ENV)

    assert neither.returncode == 2 and "--resume" in neither.stderr
    assert unknown.returncode == 2 and "No single run matches 'nope'" in unknown.stderr


def test_a_budget_stop_exits_1_saying_so_and_how_to_resume(repo: Path, aether: AetherRun,
                                                           scripted_server: ScriptedServer) -> None:
    setup_project(repo, scripted_server, agents={
        "orchestrator": {"max_output_tokens": 2000},
        "editor": {"max_output_tokens": 40000}, "coder": {"max_output_tokens": 40000},
    })
    before = tree_state(repo)

    result = aether("run", "scripted request", "--budget", "0.05", "--no-tui", env=ENV)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "budget reached" in result.stderr and "aether run --resume" in result.stderr
    assert "Traceback" not in result.stderr
    assert tree_state(repo) == before


def test_a_model_that_never_edits_ends_with_exit_0_and_the_reason(repo: Path, aether: AetherRun,
                                                                 scripted_server: ScriptedServer) -> None:
    setup_project(repo, scripted_server)
    spec = task("a", "MARK-A: make greet say hello")
    spec["fallback_strategy"] = ["fail"]
    scripted_server.script = team_script(plan_json([spec]), {"MARK-A": []})

    result = aether("run", "scripted request", "--yes", "--no-tui", env=ENV)

    assert result.returncode == 0, result.stderr
    assert "The model produced no usable edit" in result.stdout
    assert "it finished without calling any edit tool" in result.stdout
    assert (repo / "app.py").read_text() == FILES["app.py"]


# ---- Ctrl-C --------------------------------------------------------------------------------------------------


def test_ctrl_c_cancels_with_exit_130_and_the_run_resumes(repo: Path, aether: AetherRun,
                                                          scripted_server: ScriptedServer) -> None:
    setup_project(repo, scripted_server)
    team = team_script(plan_json([task("a", "MARK-A: make greet say hello"),
                                  task("b", "MARK-B: make double triple", depends_on=["a"])]), EDITS)
    entered, release = threading.Event(), threading.Event()

    def script(req: RecordedRequest) -> Reply | Fault:
        if not release.is_set() and "MARK-B:" in req.message_text():
            entered.set()
            release.wait(60)
            return Fault(status=500, message="answered after the client went away")
        return team(req)

    scripted_server.script = script
    before = tree_state(repo)
    environ = {**os.environ, **ENV, "COLUMNS": "250", "PYTHONPATH": str(PROJECT_ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "aetherflow", "run", "scripted request", "--no-tui"], cwd=repo,
                            env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert entered.wait(90), "subtask b never reached the server"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        release.set()
        if proc.poll() is None:
            proc.kill()

    assert proc.returncode == 130, err
    assert "cancelled; nothing applied; resume with `aether run --resume " in err
    assert "Traceback" not in err
    assert tree_state(repo) == before
    run_id = err.split("aether run --resume ", 1)[1].split("`", 1)[0]
    a_requests = len(_about("MARK-A", scripted_server))

    resumed = aether("run", "--resume", run_id[:12], "--yes", "--no-tui", env=ENV)

    assert resumed.returncode == 0, resumed.stderr
    assert len(_about("MARK-A", scripted_server)) == a_requests
    assert (repo / "app.py").read_text() == APP_AFTER and (repo / "util.py").read_text() == UTIL_AFTER
