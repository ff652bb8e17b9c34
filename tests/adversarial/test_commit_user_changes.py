"""Item 4 with `--commit`: AetherFlow's commit never sweeps in the user's own uncommitted work.

After an apply, a file the user had edited holds their edit plus the accepted hunks; committing it would put the
user's unfinished work into AetherFlow's commit and replace what they had staged. That commit is refused before
anything is applied; a file the user had not touched is committed alone, and their staged work stays staged.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from adversarial_support import STAGED_FILE, UNSTAGED_FILE, assert_untouched, git, snapshot
from orchestrator.pipeline_support import plan_json, services_for, task, team_script

from aetherflow.errors import ApplyConflictError
from aetherflow.orchestrator.pipeline import Pipeline, RunResult
from aetherflow.testing.server import ScriptedServer

SERVER_FILE = "app/server.py"


def _run(repo: Path, server: ScriptedServer, path: str, search: str, replace: str) -> tuple[Pipeline, RunResult]:
    server.script = team_script(plan_json([task("a", "MARK-A: one edit")]),
                                {"MARK-A": [{"path": path, "search": search, "replace": replace}]})
    pipeline = Pipeline(services_for(repo, server))
    result = asyncio.run(pipeline.run("one edit"))
    assert result.status == "review", result.message
    return pipeline, result


@pytest.mark.parametrize("path", [UNSTAGED_FILE, STAGED_FILE])
def test_commit_is_refused_before_applying_when_a_file_holds_the_users_changes(
    demo_repo: Path, scripted_server: ScriptedServer, path: str
) -> None:
    """The user's unstaged (or staged) edit is in the file the run changed: nothing applied, nothing committed."""
    first_line = (demo_repo / path).read_text().splitlines()[0]
    pipeline, result = _run(demo_repo, scripted_server, path, first_line, first_line + "  # edited")
    before = snapshot(demo_repo)

    with pytest.raises(ApplyConflictError) as refused:
        pipeline.apply(result, {path: "all"}, commit=True)

    assert path in refused.value.message and "Nothing was applied" in refused.value.message
    assert f"aether runs apply {result.run_id}" in (refused.value.hint or "")
    assert_untouched(before, demo_repo)


def test_commit_of_a_file_the_user_had_not_touched_leaves_their_work_out(
    demo_repo: Path, scripted_server: ScriptedServer
) -> None:
    """Only the applied file is in the commit; the user's staged edit is still staged, their unstaged one unstaged."""
    first_line = (demo_repo / SERVER_FILE).read_text().splitlines()[0]
    pipeline, result = _run(demo_repo, scripted_server, SERVER_FILE, first_line, first_line + "  # edited")
    staged_before = git(demo_repo, "diff", "--cached")
    unstaged_before = git(demo_repo, "diff", "--", UNSTAGED_FILE)

    pipeline.apply(result, {SERVER_FILE: "all"}, commit=True)

    assert git(demo_repo, "show", "--name-only", "--format=", "HEAD").split() == [SERVER_FILE]
    assert git(demo_repo, "diff", "--cached") == staged_before
    assert git(demo_repo, "diff", "--", UNSTAGED_FILE) == unstaged_before
    assert git(demo_repo, "status", "--porcelain", "--", SERVER_FILE) == ""
