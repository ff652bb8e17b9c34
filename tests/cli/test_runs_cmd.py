"""`aether runs`, `runs show`, `runs apply`, `undo` (subprocesses against the scripted team), and the plain-terminal
review (in-process, with a scripted prompt and a fake pipeline)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import typer
from cli_support import PROJECT_ROOT, AetherRun
from rich.console import Console
from test_run_cmd import APP_AFTER, ENV, FILES, UTIL_AFTER, setup_project

from aetherflow.cli.review import choose_files, review_and_apply, selection_lines
from aetherflow.orchestrator.pipeline import RunResult
from aetherflow.testing.server import ScriptedServer
from aetherflow.workspace.apply import AppliedRecord, Selection
from aetherflow.workspace.changeset import ChangeSet, build_file_change


def _left_for_review(repo: Path, aether: AetherRun) -> str:
    result = aether("run", "scripted request", "--no-tui", env=ENV)
    assert result.returncode == 0, result.stderr
    return result.stdout.split("aether runs apply ", 1)[1].split("`", 1)[0]


def test_runs_lists_shows_applies_and_undo_restores_byte_for_byte(repo: Path, aether: AetherRun,
                                                                  scripted_server: ScriptedServer) -> None:
    setup_project(repo, scripted_server)
    run_id = _left_for_review(repo, aether)
    prefix = run_id[:-2]

    listed = aether("runs", env=ENV)
    listed_json = json.loads(aether("runs", "--json", "-n", "5", env=ENV).stdout)
    shown = aether("runs", "show", prefix, env=ENV)
    shown_json = json.loads(aether("runs", "show", prefix, "--json", env=ENV).stdout)

    assert listed.returncode == 0 and run_id in listed.stdout and "review" in listed.stdout
    assert "scripted request" in listed.stdout and "0/0" in listed.stdout
    assert [r["run_id"] for r in listed_json] == [run_id] and listed_json[0]["cost_usd"] > 0
    assert shown.returncode == 0, shown.stderr
    for expected in ("scripted plan", "MARK-A: make greet say hello", "Subtasks", "Calls", "coder", "fast",
                     "strong", "syntax:app.py", "Scripted summary of the run.", "+    return 'hello ' + name"):
        assert expected in shown.stdout, expected
    assert {t["task_id"]: t["status"] for t in shown_json["tasks"]} == {"a": "done", "b": "done"}
    assert shown_json["calls"] and all(c["run_id"] == run_id for c in shown_json["calls"])
    assert set(shown_json["routes"]) == {"a", "b"} and "+    return x * 3" in shown_json["diff"]

    applied = aether("runs", "apply", prefix, "--yes", env=ENV)
    again = aether("runs", "apply", prefix, "--yes", env=ENV)

    assert applied.returncode == 0, applied.stderr
    assert "Applied 2 file(s)" in applied.stdout
    assert (repo / "app.py").read_text() == APP_AFTER and (repo / "util.py").read_text() == UTIL_AFTER
    assert again.returncode == 2 and "already applied" in again.stderr
    assert "2/0" in aether("runs", env=ENV).stdout
    assert json.loads(aether("stats", "--json", env=ENV).stdout)["runs_succeeded"] == 1

    (repo / "app.py").write_text(APP_AFTER + "# my own edit\n")
    refused = aether("undo", env=ENV)
    assert refused.returncode == 1 and "app.py" in refused.stderr and "changed since" in refused.stderr
    assert (repo / "app.py").read_text() == APP_AFTER + "# my own edit\n"

    (repo / "app.py").write_text(APP_AFTER)
    undone = aether("undo", "--json", env=ENV)
    assert undone.returncode == 0, undone.stderr
    assert json.loads(undone.stdout) == {"run_id": run_id, "restored": ["app.py", "util.py"], "removed": []}
    assert {p: (repo / p).read_bytes() for p in FILES} == {p: t.encode() for p, t in FILES.items()}
    assert json.loads(aether("stats", "--json", env=ENV).stdout)["runs_succeeded"] == 0  # undone: no success
    nothing = aether("undo", env=ENV)
    assert nothing.returncode == 2 and "Nothing to undo" in nothing.stderr


def test_runs_in_a_repository_without_runs_and_an_unknown_id(repo: Path, aether: AetherRun) -> None:
    empty = aether("runs")
    unknown = aether("runs", "show", "20990101")

    assert empty.returncode == 0 and "No runs yet" in empty.stdout
    assert unknown.returncode == 2 and "No single run matches '20990101'" in unknown.stderr


# ---- the interactive review, in-process ----------------------------------------------------------------------


CHANGES = ChangeSet(run_id="r1", files=[
    build_file_change("app.py", FILES["app.py"], APP_AFTER),
    build_file_change("util.py", FILES["util.py"], UTIL_AFTER),
    build_file_change("new.py", None, "x = 1\n"),
])


def _answers(*replies: str):  # noqa: ANN202 - the review's Ask
    queue = list(replies)
    prompts: list[str] = []

    def ask(prompt: str) -> str:
        prompts.append(prompt)
        if not queue:
            raise EOFError
        return queue.pop(0)

    ask.prompts = prompts  # type: ignore[attr-defined]
    return ask


@dataclass
class FakePipeline:
    """Records what the review asks the pipeline to do."""

    applied: list[Selection] = field(default_factory=list)
    discarded: int = 0

    def apply(self, result: RunResult, selection: Selection, *, commit: bool = False) -> AppliedRecord:
        self.applied.append(selection)
        return AppliedRecord(run_id=result.run_id, applied_at="2026-01-01T00:00:00Z", files=sorted(selection),
                             before={}, after={}, backup_dir="b")

    def discard(self, result: RunResult) -> None:
        self.discarded += 1


def _console() -> Console:
    return Console(record=True, width=200, force_terminal=False)


def _result() -> RunResult:
    return RunResult(run_id="r1", status="review", changeset=CHANGES)


def test_review_accepts_and_rejects_file_by_file_and_shows_a_diff_on_request() -> None:
    con, ask = _console(), _answers("d", "a", "x", "r", "a", "")
    pipeline = FakePipeline()

    end = review_and_apply(con, pipeline, _result(), yes=False, commit=False, ask=ask)

    assert end.outcome == "applied" and pipeline.applied == [{"app.py": "all", "new.py": "all"}]
    text = con.export_text()
    assert "+    return 'hello ' + name" in text  # the diff shown for "d"
    assert "Please answer a, r, d, A or R" in text  # for "x"
    assert "update app.py (+1 -1)" in text and "create new.py (+1 -0)" in text and "leave unchanged: util.py" in text
    assert "[a]ccept / [r]eject / [d]iff" in ask.prompts[0] and ask.prompts[-1].startswith("Apply now?")


@pytest.mark.parametrize(("replies", "expected"), [
    (("A",), {"app.py": "all", "util.py": "all", "new.py": "all"}),
    (("a", "R"), {"app.py": "all"}),
    (("r", "A"), {"util.py": "all", "new.py": "all"}),
])
def test_accept_all_and_reject_all_cover_every_remaining_file(replies: tuple[str, ...], expected: Selection) -> None:
    assert choose_files(_console(), CHANGES, _answers(*replies)) == expected


def test_rejecting_everything_discards_and_declining_or_eof_keeps_the_run_for_later() -> None:
    rejected, declined, ended = FakePipeline(), FakePipeline(), FakePipeline()
    con = _console()

    assert review_and_apply(con, rejected, _result(), yes=False, commit=False, ask=_answers("R")).outcome == "discarded"
    assert review_and_apply(con, declined, _result(), yes=False, commit=False, ask=_answers("A", "n")).outcome == "kept"
    assert review_and_apply(con, ended, _result(), yes=False, commit=False, ask=_answers("a")).outcome == "kept"

    assert rejected.discarded == 1 and not rejected.applied
    assert not declined.applied and not declined.discarded and not ended.applied
    assert "aether runs apply r1" in con.export_text()


def test_yes_applies_everything_and_no_terminal_applies_nothing() -> None:
    everything, nothing = FakePipeline(), FakePipeline()
    con = _console()

    assert review_and_apply(con, everything, _result(), yes=True, commit=False, ask=None).outcome == "applied"
    assert review_and_apply(con, nothing, _result(), yes=False, commit=False, ask=None).outcome == "kept"

    assert everything.applied == [{"app.py": "all", "util.py": "all", "new.py": "all"}] and not nothing.applied
    assert "no terminal to review the changes on" in con.export_text()


def test_selection_lines_name_every_write_and_what_stays() -> None:
    assert selection_lines(CHANGES, {"util.py": "all"}) == ["update util.py (+1 -1)", "leave unchanged: app.py, new.py"]


def test_runs_apply_on_a_terminal_asks_file_by_file(repo: Path, aether: AetherRun, scripted_server: ScriptedServer) -> None:
    setup_project(repo, scripted_server)
    run_id = _left_for_review(repo, aether)
    controller, terminal = pty.openpty()
    environ = {**os.environ, **ENV, "COLUMNS": "250", "PYTHONPATH": str(PROJECT_ROOT)}
    try:
        os.write(controller, b"a\nr\ny\n")  # accept app.py, reject util.py, confirm
        done = subprocess.run([sys.executable, "-m", "aetherflow", "runs", "apply", run_id], cwd=repo, env=environ,
                              stdin=terminal, capture_output=True, text=True, timeout=120)
    finally:
        os.close(terminal)
        os.close(controller)

    assert done.returncode == 0, done.stderr
    assert "[1/2] mod app.py (+1 -1)" in done.stdout and "[2/2] mod util.py (+1 -1)" in done.stdout
    assert "update app.py (+1 -1)" in done.stdout and "leave unchanged: util.py" in done.stdout
    assert (repo / "app.py").read_text() == APP_AFTER and (repo / "util.py").read_text() == FILES["util.py"]
    assert "1/1" in aether("runs", env=ENV).stdout  # one file accepted, one rejected


def test_ctrl_c_during_the_review_applies_nothing_and_exits_130() -> None:
    def interrupted(prompt: str) -> str:
        raise KeyboardInterrupt

    pipeline, con = FakePipeline(), _console()
    with pytest.raises(typer.Exit) as stopped:
        review_and_apply(con, pipeline, _result(), yes=False, commit=False, ask=interrupted)

    assert stopped.value.exit_code == 130 and not pipeline.applied and not pipeline.discarded
    assert "Review interrupted; nothing was applied" in con.export_text()
