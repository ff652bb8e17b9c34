"""Adversarial items 4 and 5 of issue 7: the user's own changes survive a run, an accept, a reject and an undo, and
a file the user changes after the run began is never overwritten.

Item 4: the user has staged, unstaged (on top of staged) and untracked changes, in files the run edits and in
others. The run touches nothing of them; accepting lands the accepted hunks on top of the user's working-tree
bytes while the index keeps exactly what the user staged; rejecting leaves every byte; undo after accept gives
back the state from before the run, index included. In-process through the Pipeline, and once as a user runs it
(`aether run --yes`, then `aether undo`).

Item 5: the user edits, deletes or creates a file of the change set while the agents work (from the scripted
server's before_reply hook) or between the run and the apply. The product promises all-or-nothing: the apply
refuses as a whole, naming every such file, with the next step (re-run, or review again and reject them); after
rejecting those files the rest applies. Edits to files outside the change set do not block the apply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from adversarial_support import (
    STAGED_FILE,
    STAGED_TEXT,
    UNSTAGED_FILE,
    UNTRACKED_FILE,
    assert_untouched,
    git,
    run_aether,
    snapshot,
    trust,
)
from orchestrator.pipeline_support import plan_json, scripted_config_toml, services_for, task, team_script

from aetherflow.errors import ApplyConflictError
from aetherflow.orchestrator.pipeline import Pipeline, RunResult
from aetherflow.testing.server import ScriptedServer
from aetherflow.workspace.apply import undo_last

ENV = {"SCRIPTED_API_KEY": "test-key"}

# More of the user's work in progress, beside what make_demo_repo sets up: the staged file also gets an unstaged
# edit on top (so it shows "MM"), and files the run never touches are staged, unstaged and untracked.
MODELS_UNSTAGED = "# user: unstaged on top of staged\n"
OTHER_STAGED, OTHER_UNSTAGED, OTHER_UNTRACKED = "README.md", "tests/test_auth.py", "notes/other.txt"

PLAN = plan_json([
    task("a", "MARK-A: raise the PBKDF2 iterations and document reset"),
    task("b", "MARK-B: shorten the session time to live"),
    task("c", "MARK-C: add a JWT module and note it in the todo list"),
])
AUTH_EDITS = [
    {"path": "app/auth.py", "search": "_ITERATIONS = 200_000", "replace": "_ITERATIONS = 600_000"},
    {"path": "app/auth.py", "search": '"""Forget every user and session (used by tests)."""',
     "replace": '"""Forget every user and every session (used by tests only)."""'},
]
MODELS_EDIT = {"path": "app/models.py", "search": "ttl_seconds: int = 3600", "replace": "ttl_seconds: int = 1800"}
TODO_EDIT = {"path": UNTRACKED_FILE, "search": "user's untracked notes\n",
             "replace": "user's untracked notes\n- JWT module added\n"}
JWT_FILE, JWT_TEXT = "app/tokens/jwt.py", "ALGORITHM = 'HS256'\n"
EDITS = {
    "MARK-A": AUTH_EDITS,
    "MARK-B": [MODELS_EDIT],
    "MARK-C": [TODO_EDIT, {"path": JWT_FILE, "content": JWT_TEXT}],
}


def add_more_user_changes(repo: Path) -> None:
    """Stage README.md, edit tests/test_auth.py unstaged, add notes/other.txt, and edit the staged models.py again."""
    with (repo / OTHER_STAGED).open("a") as out:
        out.write("\nA staged line in the README.\n")
    git(repo, "add", OTHER_STAGED)
    with (repo / OTHER_UNSTAGED).open("a") as out:
        out.write("\n# user: unstaged test note\n")
    (repo / OTHER_UNTRACKED).write_text("more untracked notes\n")
    with (repo / STAGED_FILE).open("a") as out:
        out.write(MODELS_UNSTAGED)


def with_edit(text: str, edit: dict[str, str]) -> str:
    """`text` with one search/replace edit applied (the search text occurs exactly once)."""
    assert text.count(edit["search"]) == 1
    return text.replace(edit["search"], edit["replace"])


def run_pipeline(repo: Path, server: ScriptedServer,
                 before_reply: Callable[[str], None] | None = None) -> tuple[Pipeline, RunResult]:
    server.script = team_script(PLAN, EDITS, before_reply=before_reply)
    pipeline = Pipeline(services_for(repo, server))
    result = asyncio.run(pipeline.run("harden auth and sessions"))
    assert result.status == "review", result.message
    return pipeline, result


def index_blob(repo: Path, rel: str) -> str:
    """The content the index holds for `rel` (what the user staged)."""
    return git(repo, "show", f":{rel}")


@pytest.fixture
def repo(demo_repo: Path) -> Path:
    add_more_user_changes(demo_repo)
    return demo_repo


# ---- item 4: through a run, accept, reject and undo --------------------------------------------------------


def test_a_run_touches_nothing_and_works_on_what_the_user_sees(repo: Path, scripted_server: ScriptedServer) -> None:
    """The run changes no byte, no index entry and no status line, and its diffs are against the user's own bytes."""
    before = snapshot(repo)

    _, result = run_pipeline(repo, scripted_server)

    assert_untouched(before, repo)
    assert result.changeset is not None
    assert sorted(result.changeset.paths()) == sorted(["app/auth.py", "app/models.py", JWT_FILE, UNTRACKED_FILE])
    for rel in ("app/auth.py", "app/models.py", UNTRACKED_FILE):
        assert result.changeset.get(rel).old_text == (repo / rel).read_text(), rel  # the user's working-tree bytes
    assert len(result.changeset.get("app/auth.py").hunks) == 2


def test_accept_lands_on_top_of_the_users_edits_and_keeps_the_index(repo: Path,
                                                                     scripted_server: ScriptedServer) -> None:
    """Accepted hunks land on the user's unstaged/staged bytes; the index and the untracked state do not change."""
    pipeline, result = run_pipeline(repo, scripted_server)
    before = snapshot(repo)
    user_auth, user_models = (repo / "app/auth.py").read_text(), (repo / STAGED_FILE).read_text()
    user_todo, staged_models = (repo / UNTRACKED_FILE).read_text(), index_blob(repo, STAGED_FILE)

    record = pipeline.apply(result, {"app/auth.py": "all", STAGED_FILE: "all", UNTRACKED_FILE: "all", JWT_FILE: "all"})

    assert sorted(record.files) == sorted([JWT_FILE, "app/auth.py", STAGED_FILE, UNTRACKED_FILE])
    assert (repo / "app/auth.py").read_text() == with_edit(with_edit(user_auth, AUTH_EDITS[0]), AUTH_EDITS[1])
    assert (repo / UNSTAGED_FILE).read_text().endswith("# user: unstaged note\n")  # the user's edit is still there
    assert (repo / STAGED_FILE).read_text() == with_edit(user_models, MODELS_EDIT)
    assert (repo / STAGED_FILE).read_text().endswith(STAGED_TEXT + MODELS_UNSTAGED)
    assert (repo / UNTRACKED_FILE).read_text() == with_edit(user_todo, TODO_EDIT)
    assert (repo / JWT_FILE).read_text() == JWT_TEXT
    after = snapshot(repo)
    assert after.staged == before.staged and after.staged_diff == before.staged_diff and after.head == before.head
    assert index_blob(repo, STAGED_FILE) == staged_models  # exactly what the user staged, not the run's edit
    status = after.status.splitlines()
    assert f"MM {STAGED_FILE}" in status and f" M {UNSTAGED_FILE}" in status
    assert f"?? {UNTRACKED_FILE}" in status and f"?? {JWT_FILE}" in status  # untracked stays untracked
    changed = {rel for rel in after.files if after.files[rel] != before.files.get(rel)}
    assert changed == {"app/auth.py", STAGED_FILE, UNTRACKED_FILE, JWT_FILE}  # and nothing else


def test_accepting_one_hunk_writes_only_that_hunk_over_the_users_edit(repo: Path,
                                                                      scripted_server: ScriptedServer) -> None:
    """A partial selection writes the accepted hunk on the user's bytes; rejected hunks and files stay as they are."""
    pipeline, result = run_pipeline(repo, scripted_server)
    before = snapshot(repo)
    user_auth = (repo / "app/auth.py").read_text()

    pipeline.apply(result, {"app/auth.py": {0}})

    assert (repo / "app/auth.py").read_text() == with_edit(user_auth, AUTH_EDITS[0])
    after = snapshot(repo)
    assert {rel for rel in after.files if after.files[rel] != before.files[rel]} == {"app/auth.py"}
    assert set(after.files) == set(before.files)
    assert (after.status, after.staged, after.staged_diff) == (before.status, before.staged, before.staged_diff)


def test_reject_leaves_every_byte_the_index_and_the_status(repo: Path, scripted_server: ScriptedServer) -> None:
    """Rejecting the whole change set leaves the user's state exactly as before the run, and drops the worktree."""
    before = snapshot(repo)
    pipeline, result = run_pipeline(repo, scripted_server)

    pipeline.discard(result)

    assert_untouched(before, repo)
    assert not (repo / ".aetherflow" / "worktrees" / result.run_id).exists()
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1


def test_undo_after_accept_gives_back_the_state_before_the_run(repo: Path, scripted_server: ScriptedServer) -> None:
    """Undo restores every byte, removes the created file and folder, and the index is what the user staged."""
    before = snapshot(repo)
    pipeline, result = run_pipeline(repo, scripted_server)
    pipeline.apply(result, {path: "all" for path in result.changeset.paths()})
    assert snapshot(repo) != before

    record = undo_last(repo)

    assert record.run_id == result.run_id
    assert_untouched(before, repo)
    assert not (repo / "app" / "tokens").exists()


def test_run_yes_then_undo_as_a_user_keeps_the_users_work(repo: Path, scripted_server: ScriptedServer) -> None:
    """`aether run --yes` lands the edits on the user's work with the index intact; `aether undo` restores it all."""
    (repo / "aetherflow.toml").write_text(scripted_config_toml(scripted_server))
    trust(repo)
    scripted_server.script = team_script(PLAN, EDITS)
    before = snapshot(repo)
    user_auth = (repo / "app/auth.py").read_text()

    ran = run_aether(repo, "run", "harden auth and sessions", "--yes", "--no-tui", env=ENV)

    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "Applied 4 file(s)" in ran.stdout and "aether undo" in ran.stdout
    assert (repo / "app/auth.py").read_text() == with_edit(with_edit(user_auth, AUTH_EDITS[0]), AUTH_EDITS[1])
    applied = snapshot(repo)
    assert (applied.staged, applied.staged_diff) == (before.staged, before.staged_diff)

    undone = run_aether(repo, "undo", env=ENV)

    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert "Undid run" in undone.stdout and f"removed {JWT_FILE} (the run had created it)" in undone.stdout
    assert_untouched(before, repo)
    assert "Traceback" not in ran.stderr + undone.stderr


# ---- item 5: a file changed after the run began ------------------------------------------------------------


def _assert_refused(pipeline: Pipeline, result: RunResult, names: list[str], not_named: list[str]) -> None:
    with pytest.raises(ApplyConflictError) as info:
        pipeline.apply(result, {path: "all" for path in result.changeset.paths()})
    error = info.value
    assert "Nothing was applied" in error.message and "changed these files after the run began" in error.message
    for name in names:
        assert name in error.message
    for name in not_named:
        assert name not in error.message
    assert "reject those files" in (error.hint or "") and f"aether runs apply {result.run_id}" in (error.hint or "")
    assert error.exit_code == 1


def test_a_file_edited_while_the_agents_work_is_refused_by_name_and_nothing_applies(
    repo: Path, scripted_server: ScriptedServer,
) -> None:
    """All-or-nothing: an edit during the run to one file of the change set refuses the whole apply, naming it."""
    def user_edits_models(marker: str) -> None:
        if marker == "MARK-B" and not (repo / "edited").exists():
            (repo / "edited").write_text("")  # an untracked marker so the edit happens once
            with (repo / STAGED_FILE).open("a") as out:
                out.write("# user: edited while the run was working\n")

    pipeline, result = run_pipeline(repo, scripted_server, before_reply=user_edits_models)
    before = snapshot(repo)
    assert (repo / STAGED_FILE).read_text().endswith("# user: edited while the run was working\n")

    _assert_refused(pipeline, result, [STAGED_FILE], ["app/auth.py", JWT_FILE, UNTRACKED_FILE])

    assert_untouched(before, repo)
    assert not list((repo / ".aetherflow" / "journal").glob("*.json"))


def test_after_a_refusal_rejecting_the_changed_file_applies_the_rest(repo: Path,
                                                                     scripted_server: ScriptedServer) -> None:
    """The promised next step works: reject the file the user changed, the others apply, the user's bytes stay."""
    pipeline, result = run_pipeline(repo, scripted_server)
    with (repo / "app/auth.py").open("a") as out:
        out.write("# user: edited between the run and the apply\n")
    user_auth = (repo / "app/auth.py").read_bytes()
    user_models = (repo / STAGED_FILE).read_text()
    _assert_refused(pipeline, result, ["app/auth.py"], [STAGED_FILE])

    record = pipeline.apply(result, {STAGED_FILE: "all", JWT_FILE: "all"})

    assert sorted(record.files) == sorted([STAGED_FILE, JWT_FILE])
    assert (repo / "app/auth.py").read_bytes() == user_auth
    assert (repo / STAGED_FILE).read_text() == with_edit(user_models, MODELS_EDIT)


def test_a_file_deleted_and_one_created_by_the_user_during_the_run_are_both_refused(
    repo: Path, scripted_server: ScriptedServer,
) -> None:
    """Deleting a file the run edits, or creating the file the run creates, refuses the apply naming both."""
    def user_moves_things(marker: str) -> None:
        if marker == "MARK-A" and (repo / UNTRACKED_FILE).exists():
            (repo / UNTRACKED_FILE).unlink()
            (repo / JWT_FILE).parent.mkdir(parents=True, exist_ok=True)
            (repo / JWT_FILE).write_text("# the user's own jwt module\n")

    # The run's worktree copy of the todo list is taken before the agents start, so MARK-C still edits it.
    pipeline, result = run_pipeline(repo, scripted_server, before_reply=user_moves_things)
    before = snapshot(repo)

    _assert_refused(pipeline, result, [UNTRACKED_FILE, JWT_FILE], ["app/auth.py", STAGED_FILE])

    assert_untouched(before, repo)
    assert (repo / JWT_FILE).read_text() == "# the user's own jwt module\n"


def test_an_edit_to_a_file_outside_the_change_set_does_not_block_the_apply(repo: Path,
                                                                          scripted_server: ScriptedServer) -> None:
    """The check is per file of the selection: the user's mid-run edit elsewhere is kept and the apply goes on."""
    def user_edits_server(marker: str) -> None:
        if marker == "MARK-A":
            (repo / "app/server.py").write_text("# the user rewrote the server meanwhile\n")

    pipeline, result = run_pipeline(repo, scripted_server, before_reply=user_edits_server)

    record = pipeline.apply(result, {path: "all" for path in result.changeset.paths()})

    assert len(record.files) == 4
    assert (repo / "app/server.py").read_text() == "# the user rewrote the server meanwhile\n"


def test_run_yes_refuses_a_file_edited_during_the_run_with_exit_1_and_the_next_step(
    repo: Path, scripted_server: ScriptedServer,
) -> None:
    """`aether run --yes`: the apply is refused as a whole, the file and the next step are named, exit code 1."""
    (repo / "aetherflow.toml").write_text(scripted_config_toml(scripted_server))
    trust(repo)
    edited: list[bool] = []

    def user_edits_models(marker: str) -> None:
        if marker == "MARK-B" and not edited:
            edited.append(True)
            with (repo / STAGED_FILE).open("a") as out:
                out.write("# user: edited while the run was working\n")

    scripted_server.script = team_script(PLAN, EDITS, before_reply=user_edits_models)
    before_run = snapshot(repo)

    ran = run_aether(repo, "run", "harden auth and sessions", "--yes", "--no-tui", env=ENV)

    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "changed these files after the run began: app/models.py" in ran.stderr
    assert "reject those files" in ran.stderr and "aether runs apply" in ran.stderr
    assert "Traceback" not in ran.stderr
    after = snapshot(repo)
    changed = {rel for rel in after.files if after.files[rel] != before_run.files.get(rel)}
    assert changed == {STAGED_FILE}  # only the user's own edit; nothing of the run
    assert (after.staged, after.staged_diff, after.head) == (before_run.staged, before_run.staged_diff, before_run.head)
