"""Apply, undo, crash recovery and commit: exactly what was accepted, atomically, restorable byte for byte."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from workspace_support import git, make_repo, user_state

from aetherflow.errors import AetherError, ApplyConflictError, UsageError
from aetherflow.workspace.apply import Selection, apply_changes, recover_pending, undo_last
from aetherflow.workspace.commit import commit_applied
from aetherflow.workspace._fs import file_sha256
from aetherflow.workspace.changeset import ChangeSet, build_file_change
from aetherflow.workspace.worktree import Workspace

UTIL_EDITED = "".join(f"line {i}\n" for i in range(1, 31)).replace("line 2\n", "LINE 2\n").replace(
    "line 28\n", "LINE 28\n"
)


def _prepare(repo: Path) -> tuple[Workspace, ChangeSet]:
    """A run that modifies auth.py, edits two distant lines of util.py (two hunks), adds and deletes a file."""
    ws = Workspace.create(repo, "run1")

    async def edits() -> None:
        await ws.edit("app/auth.py", "return bool(user)", "return user is not None")
        await ws.edit("app/util.py", "line 2\n", "LINE 2\n")
        await ws.edit("app/util.py", "line 28\n", "LINE 28\n")
        await ws.write_file("app/tokens/jwt.py", "ALGORITHM = 'HS256'\n")
        await ws.delete_file("README.md")

    asyncio.run(edits())
    return ws, ws.changeset()


def _all(changeset: ChangeSet) -> Selection:
    return {p: "all" for p in changeset.paths()}


def _leftovers(repo: Path) -> list[str]:
    """Temp files anywhere in the tree and journals left in .aetherflow/journal."""
    temps = [p.name for p in repo.rglob("*.tmp") if ".git" not in p.parts]
    return temps + [p.name for p in (repo / ".aetherflow/journal").glob("*.json")]


def test_apply_a_selection_writes_exactly_that(repo: Path) -> None:
    (repo / "notes.txt").write_text("user's untracked notes\n")
    git(repo, "add", "app/__init__.py")  # a no-op stage, to show the index stays as it was
    ws, changeset = _prepare(repo)
    staged_before = git(repo, "diff", "--cached")
    auth_before = (repo / "app/auth.py").read_bytes()
    record = apply_changes(repo, changeset, {"app/util.py": {0}, "app/tokens/jwt.py": "all"}, ws.user_snapshot)
    assert record.files == ["app/tokens/jwt.py", "app/util.py"]  # change-set order
    assert (repo / "app/util.py").read_text() == "".join(f"line {i}\n" for i in range(1, 31)).replace(
        "line 2\n", "LINE 2\n"
    )
    assert (repo / "app/tokens/jwt.py").read_text() == "ALGORITHM = 'HS256'\n"
    assert (repo / "app/auth.py").read_bytes() == auth_before  # rejected
    assert (repo / "README.md").exists()  # its deletion was not selected
    assert (repo / "notes.txt").read_text() == "user's untracked notes\n"
    assert git(repo, "diff", "--cached") == staged_before
    assert _leftovers(repo) == []


def test_apply_everything_keeps_modes(repo: Path) -> None:
    (repo / "app/util.py").chmod(0o755)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "exec")
    ws, changeset = _prepare(repo)
    apply_changes(repo, changeset, _all(changeset), ws.user_snapshot)
    assert (repo / "app/util.py").read_text() == UTIL_EDITED
    assert (repo / "app/util.py").stat().st_mode & 0o777 == 0o755
    assert not (repo / "README.md").exists()
    assert (repo / "app/auth.py").read_text().endswith("return user is not None\n")


def test_apply_refuses_files_the_user_changed_and_writes_nothing(repo: Path) -> None:
    ws, changeset = _prepare(repo)
    (repo / "app/auth.py").write_text("# the user's own edit\n")
    (repo / "app/tokens").mkdir()
    (repo / "app/tokens/jwt.py").write_text("# the user created it too\n")
    before = user_state(repo)
    with pytest.raises(ApplyConflictError) as info:
        apply_changes(repo, changeset, _all(changeset), ws.user_snapshot)
    assert "app/auth.py" in info.value.message and "app/tokens/jwt.py" in info.value.message
    assert "app/util.py" not in info.value.message
    assert "changed these files after the run began" in info.value.message
    assert info.value.exit_code == 1
    assert user_state(repo) == before


def test_failure_mid_apply_rolls_back_everything(repo: Path) -> None:
    ws, changeset = _prepare(repo)
    before = user_state(repo)

    def fail_after_two(count: int, path: str) -> None:
        if count == 2:
            raise OSError(28, "No space left on device")

    with pytest.raises(AetherError) as info:
        apply_changes(repo, changeset, _all(changeset), ws.user_snapshot, after_write=fail_after_two)
    assert "No space left on device" in info.value.message
    assert "every file already written was restored" in info.value.message
    assert user_state(repo) == before
    assert not (repo / "app/tokens").exists()  # the folder the apply created is gone too
    assert _leftovers(repo) == []
    assert not list((repo / ".aetherflow/backups").iterdir())
    with pytest.raises(UsageError, match="Nothing to undo"):
        undo_last(repo)


def test_read_only_target_is_refused_before_any_write(repo: Path) -> None:
    ws, changeset = _prepare(repo)
    (repo / "app/util.py").chmod(0o444)
    before = user_state(repo)
    with pytest.raises(AetherError) as info:
        apply_changes(repo, changeset, _all(changeset), ws.user_snapshot)
    assert "app/util.py is read-only" in info.value.message
    assert "chmod u+w" in (info.value.hint or "")
    assert user_state(repo) == before


_CRASH_SCRIPT = """
import json, sys
from pathlib import Path
from aetherflow.workspace.apply import apply_changes
from aetherflow.workspace._fs import file_sha256
from aetherflow.workspace.changeset import ChangeSet, build_file_change

repo, data, block_at = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text()), int(sys.argv[3])

def hook(count, path):
    if count == block_at:
        print("wrote", count, flush=True)
        sys.stdin.readline()  # blocks until the test kills us

changeset = ChangeSet.model_validate(data["changeset"])
apply_changes(repo, changeset, {p: "all" for p in changeset.paths()}, data["snapshot"], after_write=hook)
"""


def _apply_and_kill(repo: Path, tmp_path: Path, ws: Workspace, changeset: ChangeSet, block_at: int) -> None:
    """Run apply in a subprocess, SIGKILL it right after its `block_at`-th write."""
    script, data = tmp_path / "crash.py", tmp_path / "data.json"
    script.write_text(_CRASH_SCRIPT)
    data.write_text(json.dumps({"changeset": changeset.model_dump(mode="json"), "snapshot": ws.user_snapshot}))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(repo), str(data), str(block_at)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == f"wrote {block_at}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def test_crash_during_apply_is_rolled_back_on_next_start(repo: Path, tmp_path: Path) -> None:
    ws, changeset = _prepare(repo)
    before = user_state(repo)
    _apply_and_kill(repo, tmp_path, ws, changeset, block_at=2)
    assert user_state(repo) != before  # half applied: the crash really happened mid-way
    # A crash inside a write leaves that write's temp file; recovery must remove it too.
    (journal_file,) = (repo / ".aetherflow/journal").glob("*.json")
    third = json.loads(journal_file.read_text())["entries"][2]
    assert third["path"] == "app/tokens/jwt.py"
    (repo / third["tmp"]).parent.mkdir(parents=True)
    (repo / third["tmp"]).write_bytes(b"half-written")
    message = recover_pending(repo)
    assert message is not None and "rolled back" in message and "run1" in message
    assert user_state(repo) == before
    assert _leftovers(repo) == []
    assert not (repo / "app/tokens").exists()
    assert recover_pending(repo) is None
    with pytest.raises(UsageError, match="Nothing to undo"):
        undo_last(repo)


def test_crash_after_every_write_is_completed_on_next_start(repo: Path, tmp_path: Path) -> None:
    ws, changeset = _prepare(repo)
    before = user_state(repo)
    _apply_and_kill(repo, tmp_path, ws, changeset, block_at=len(changeset.files))
    message = recover_pending(repo)
    assert message is not None and "it was completed" in message
    assert (repo / "app/util.py").read_text() == UTIL_EDITED
    record = undo_last(repo)  # the completed apply is recorded, so it can be undone
    assert record.run_id == "run1"
    assert user_state(repo) == before


def test_undo_restores_byte_for_byte(repo: Path) -> None:
    crlf = b"def login(user):\r\n    return check(user)\r\n\r\ndef check(user):\r\n    return bool(user)\r\n"
    (repo / "app/auth.py").write_bytes(crlf)
    (repo / "README.md").chmod(0o600)
    ws, changeset = _prepare(repo)
    before = user_state(repo)
    apply_changes(repo, changeset, _all(changeset), ws.user_snapshot)
    assert user_state(repo) != before
    record = undo_last(repo)
    assert record.files == changeset.paths()
    assert user_state(repo) == before
    assert not (repo / "app/tokens").exists()
    with pytest.raises(UsageError, match="Nothing to undo"):
        undo_last(repo)


def test_dirty_files_edited_by_the_run_survive_accept_and_undo(repo: Path) -> None:
    """Issue 7 item 4: the user's staged and unstaged edits in a file the run changes are kept, index included."""
    (repo / "app/util.py").write_text("".join(f"line {i}\n" for i in range(1, 31)).replace("line 15", "staged 15"))
    git(repo, "add", "app/util.py")
    (repo / "app/util.py").write_text((repo / "app/util.py").read_text().replace("line 16", "unstaged 16"))
    ws, changeset = _prepare(repo)
    assert "staged 15" in changeset.get("app/util.py").old_text  # type: ignore[union-attr, operator]
    before = user_state(repo)
    apply_changes(repo, changeset, {"app/util.py": "all"}, ws.user_snapshot)
    text = (repo / "app/util.py").read_text()
    assert "staged 15" in text and "unstaged 16" in text and "LINE 2" in text and "LINE 28" in text
    assert git(repo, "diff", "--cached") == before.staged
    undo_last(repo)
    assert user_state(repo) == before


def test_undo_refuses_when_a_file_changed_since(repo: Path) -> None:
    ws, changeset = _prepare(repo)
    apply_changes(repo, changeset, _all(changeset), ws.user_snapshot)
    (repo / "app/util.py").write_text("edited after the apply\n")
    after = user_state(repo)
    with pytest.raises(ApplyConflictError) as info:
        undo_last(repo)
    assert "app/util.py" in info.value.message and "app/auth.py" not in info.value.message
    assert user_state(repo) == after


def test_commit_applied_commits_only_the_applied_files(repo: Path) -> None:
    (repo / "other.txt").write_text("user's staged work\n")
    git(repo, "add", "other.txt")
    ws, changeset = _prepare(repo)
    record = apply_changes(repo, changeset, {"app/auth.py": "all", "app/tokens/jwt.py": "all"}, ws.user_snapshot)
    sha = commit_applied(repo, record, "Use explicit None check")
    assert git(repo, "rev-parse", "HEAD").strip() == sha
    assert git(repo, "show", "--name-only", "--format=%s", "HEAD").split() == [
        "Use", "explicit", "None", "check", "app/auth.py", "app/tokens/jwt.py",
    ]  # fmt: skip
    assert git(repo, "diff", "--cached", "--name-only") == "other.txt\n"  # still staged, not committed
    # HEAD moved, files unchanged since: undo still restores the files (the commit stays, nothing is lost).
    undo_last(repo)
    assert (repo / "app/auth.py").read_text().endswith("return bool(user)\n")
    assert not (repo / "app/tokens/jwt.py").exists()


def test_binary_file_is_applied_from_its_blob(repo: Path) -> None:
    ws = Workspace.create(repo, "run1")
    (ws.root / "logo.bin").write_bytes(b"\0\xff\x10binary")
    changeset = ws.changeset()
    assert changeset.get("logo.bin").binary  # type: ignore[union-attr]
    apply_changes(repo, changeset, {"logo.bin": "all"}, ws.user_snapshot)
    assert (repo / "logo.bin").read_bytes() == b"\0\xff\x10binary"


def test_empty_selection_and_unknown_paths_are_usage_errors(repo: Path) -> None:
    ws, changeset = _prepare(repo)
    with pytest.raises(UsageError, match="Nothing was selected"):
        apply_changes(repo, changeset, {}, ws.user_snapshot)
    with pytest.raises(UsageError, match="does not have: nope.py"):
        apply_changes(repo, changeset, {"nope.py": "all"}, ws.user_snapshot)
    with pytest.raises(UsageError, match="no hunk"):
        apply_changes(repo, changeset, {"app/util.py": {7}}, ws.user_snapshot)


def test_eol_conversion_round_trips(tmp_path: Path) -> None:
    """With `eol=crlf` the files on disk are CRLF while git stores LF: the run diffs and applies CRLF bytes."""
    repo = make_repo(tmp_path / "crlf", {".gitattributes": "*.txt text eol=crlf\n", "a.txt": "one\ntwo\n"})
    (repo / "a.txt").unlink()
    git(repo, "checkout", "--", "a.txt")
    assert (repo / "a.txt").read_bytes() == b"one\r\ntwo\r\n"
    ws = Workspace.create(repo, "run1")
    asyncio.run(ws.edit("a.txt", "two\n", "TWO\n"))
    changeset = ws.changeset()
    assert changeset.get("a.txt").hunks[0].lines == [" one\r", "-two\r", "+TWO\r"]  # type: ignore[union-attr]
    apply_changes(repo, changeset, {"a.txt": "all"}, ws.user_snapshot)
    assert (repo / "a.txt").read_bytes() == b"one\r\nTWO\r\n"


def test_file_whose_bytes_differ_from_the_runs_base_is_refused(repo: Path) -> None:
    """If what is on disk is not the text the change was computed from, patching it is refused, not guessed."""
    (repo / "notes.txt").write_bytes(b"a\r\nb\r\n")
    changeset = ChangeSet(run_id="r", files=[build_file_change("notes.txt", "a\nb\n", "a\nB\n")])
    snapshot = {"notes.txt": file_sha256(repo / "notes.txt")}
    with pytest.raises(ApplyConflictError, match="differ from the copy the run worked on"):
        apply_changes(repo, changeset, {"notes.txt": "all"}, snapshot)
    assert (repo / "notes.txt").read_bytes() == b"a\r\nb\r\n"


def test_commit_refused_by_a_hook_says_what_to_do(repo: Path) -> None:
    hook = repo / ".git/hooks/pre-commit"
    hook.write_text("#!/bin/sh\necho 'lint failed' >&2\nexit 1\n")
    hook.chmod(0o755)
    ws, changeset = _prepare(repo)
    record = apply_changes(repo, changeset, {"app/auth.py": "all"}, ws.user_snapshot)
    with pytest.raises(AetherError) as info:
        commit_applied(repo, record, "message")
    assert "commit failed: lint failed" in info.value.message
    assert "pre-commit hook" in (info.value.hint or "")


def test_recovery_removes_backups_nothing_refers_to(repo: Path) -> None:
    """A crash after backing up but before the journal was written leaves only an orphan backup folder."""
    orphan = repo / ".aetherflow/backups/123-apply/app"
    orphan.mkdir(parents=True)
    (orphan / "auth.py").write_text("old")
    assert recover_pending(repo) is None
    assert not (repo / ".aetherflow/backups/123-apply").exists()
