"""Adversarial item 7 of issue 7: disk full, permission denied, a read-only file system and a file where a folder
should be, during apply and undo.

"Disk full" is injected from the Nth call that needs space (every such call then fails with ENOSPC, as on a full
disk where renames and removals still work; apply_fault_support), and a real tmpfs is filled when this machine
lets us mount one; "permission denied" is real: the apply runs as an unprivileged user against a folder it cannot
write; so are "a read-only file system" (a read-only bind mount, where mounting is allowed) and "a file where a
folder is expected". Every case ends in a full rollback (or, when only the bookkeeping after the last write
failed, every file written and completed on the next start) with a message naming the cause and the next step,
and a non-zero exit through the CLI.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from adversarial_support import assert_untouched, make_demo_repo, run_aether, snapshot
from apply_fault_support import JWT_FILE, JWT_TEXT, apply_all, disk_full_from, in_child, leftovers, prepare, state_is
from orchestrator.pipeline_support import plan_json, services_for, task, team_script

from aetherflow.errors import AetherError
from aetherflow.orchestrator.pipeline import Pipeline
from aetherflow.testing.server import ScriptedServer
from aetherflow.workspace.apply import recover_pending, undo_last


# ---- item 7: disk full, permission denied, a file where a folder should be ---------------------------------


def _assert_clear(error: dict[str, Any] | None, *words: str) -> None:
    assert error is not None and not error.get("raw"), error
    assert error["type"] != "OSError" and error["hint"], error
    for word in words:
        assert word in error["message"], error


def test_disk_full_at_every_step_of_apply_rolls_everything_back_with_a_clear_message(demo_repo: Path) -> None:
    """ENOSPC from each point on: full rollback (renames need no space), or every file written and the record
    completed on the next start once there is space; never a raw OSError, never a half-applied tree."""
    ws, changeset = prepare(demo_repo)
    before = snapshot(demo_repo)
    apply_all(demo_repo, ws, changeset)
    after = snapshot(demo_repo)
    undo_last(demo_repo)
    outcomes: list[str] = []

    for n in range(1, 100):
        end = in_child(lambda: apply_all(demo_repo, ws, changeset), disk_full_from(n))
        if end.error is None:
            outcomes.append("finished")
            break
        _assert_clear(end.error, "No space left on device")
        landed = state_is(demo_repo, {"before": before, "after": after})
        outcomes.append(landed)
        if landed == "before":
            assert leftovers(demo_repo) == [], f"disk full from space-needing call {n}"
            message = end.error["message"]
            assert "nothing was changed" in message or "already written was restored" in message
            continue
        # Every file was written, only the record was not: the next start (still full) says so, then completes.
        assert "wrote every file but could not record it" in end.error["message"]
        still_full = in_child(lambda: recover_pending(demo_repo), disk_full_from(1))
        _assert_clear(still_full.error, "Could not finish an apply or undo", "No space left on device")
        assert state_is(demo_repo, {"after": after, "before": before}) == "after"
        assert "completed" in (recover_pending(demo_repo) or "")
        assert leftovers(demo_repo) == []
        undo_last(demo_repo)
    assert outcomes[-1] == "finished" and "before" in outcomes, outcomes
    assert outcomes.count("before") >= 5, outcomes


def test_disk_full_during_undo_leaves_the_applied_files_exactly(demo_repo: Path) -> None:
    """ENOSPC at each point of an undo: the applied state stays whole (or the undo finishes), with a message."""
    ws, changeset = prepare(demo_repo)
    before = snapshot(demo_repo)
    apply_all(demo_repo, ws, changeset)
    applied = snapshot(demo_repo)

    for n in range(1, 100):
        end = in_child(lambda: undo_last(demo_repo), disk_full_from(n))
        if end.error is None:
            break
        _assert_clear(end.error, "No space left on device")
        landed = state_is(demo_repo, {"after": applied, "before": before})
        if landed == "after":
            assert leftovers(demo_repo) == [], f"disk full from space-needing call {n}"
        else:
            assert "wrote every file but could not record it" in end.error["message"]
            assert "completed" in (recover_pending(demo_repo) or "")
            apply_all(demo_repo, ws, changeset)
    assert snapshot(demo_repo) == before


def _own_tree(root: Path, uid: int, gid: int) -> None:
    for path in [root, *root.rglob("*")]:
        os.lchown(path, uid, gid)


@pytest.fixture
def reachable_repo() -> Any:
    """The demo repository in a folder an unprivileged user can reach (pytest's own tmp folder is private)."""
    folder = Path(tempfile.mkdtemp(prefix="aether-eacces-"))
    folder.chmod(0o755)
    yield make_demo_repo(folder / "repo")
    shutil.rmtree(folder, ignore_errors=True)


def test_permission_denied_on_a_folder_rolls_back_the_files_already_written(reachable_repo: Path) -> None:
    """A real EACCES (the apply runs as an unprivileged user; app/ is not writable): README.md, deleted first, is
    restored; nothing else changes; the message names the cause and says to fix permissions."""
    repo = reachable_repo
    ws, changeset = prepare(repo)
    before = snapshot(repo)
    nobody = pwd.getpwnam("nobody") if os.geteuid() == 0 else None
    if nobody is not None:  # root ignores permissions, so the apply runs as nobody, owning every file but app/
        _own_tree(repo, nobody.pw_uid, nobody.pw_gid)
    (repo / "app").chmod(0o555)
    try:
        user = (nobody.pw_uid, nobody.pw_gid) if nobody is not None else None
        end = in_child(lambda: apply_all(repo, ws, changeset), user=user)
    finally:
        (repo / "app").chmod(0o755)
        if nobody is not None:
            _own_tree(repo, os.geteuid(), os.getegid())

    _assert_clear(end.error, "Permission denied", "app/", "every file already written was restored")
    assert "permissions" in end.error["hint"]
    assert_untouched(before, repo)
    assert leftovers(repo) == []


def test_a_file_where_a_folder_is_expected_rolls_back_and_names_it(demo_repo: Path) -> None:
    """The user made app/tokens a file after the run created app/tokens/jwt.py: refused or rolled back, named."""
    ws, changeset = prepare(demo_repo)
    (demo_repo / "app" / "tokens").write_text("the user's file named tokens\n")
    before = snapshot(demo_repo)

    with pytest.raises(AetherError) as info:
        apply_all(demo_repo, ws, changeset)

    assert "app/tokens" in info.value.message and info.value.hint
    assert_untouched(before, demo_repo)
    assert leftovers(demo_repo) == []


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("mount") is None:
        pytest.skip("no mount command here")
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


def test_a_read_only_file_system_under_the_repository_rolls_back_and_says_so(demo_repo: Path) -> None:
    """A real EROFS (app/ bind-mounted read-only, which root cannot bypass): README.md, deleted first, comes back;
    the message names the cause. Skipped where this machine does not let us mount."""
    app = demo_repo / "app"
    ws, changeset = prepare(demo_repo)
    before = snapshot(demo_repo)
    if _mount("--bind", str(app), str(app)).returncode != 0:
        pytest.skip("cannot bind-mount here; the permission and disk-full tests cover the rollback")
    try:
        remounted = _mount("-o", "remount,bind,ro", str(app))
        assert remounted.returncode == 0, remounted.stderr
        with pytest.raises(AetherError) as info:
            apply_all(demo_repo, ws, changeset)
    finally:
        subprocess.run(["umount", "-l", str(app)], check=False)

    assert "Read-only file system" in info.value.message and "every file already written was restored" in (
        info.value.message
    )
    assert "permissions" in (info.value.hint or "")
    assert_untouched(before, demo_repo)
    assert leftovers(demo_repo) == []


# ---- item 7 through the CLI on a real, full tmpfs -------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Any:
    """A 6 MB tmpfs mounted for the test (skipped where this machine does not let us mount one)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = _mount("-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount_point))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the injected ENOSPC tests cover it")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(disk: Path, leave_bytes: int) -> None:
    """Fill `disk` with a file until only about `leave_bytes` are free."""
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with (disk / "filler").open("wb") as out:
        out.write(b"\0" * max(0, free - leave_bytes))


def test_runs_apply_on_a_full_disk_exits_1_and_leaves_every_file_as_it_was(small_disk: Path,
                                                                          scripted_server: ScriptedServer) -> None:
    """A real ENOSPC: `aether runs apply --yes` rolls back, says the disk is full and what to do, exits 1."""
    repo = make_demo_repo(small_disk / "repo")
    scripted_server.script = team_script(
        plan_json([task("a", "MARK-A: tune auth and add a token module")]),
        {"MARK-A": [{"path": "app/auth.py", "search": "_ITERATIONS = 200_000", "replace": "_ITERATIONS = 600_000"},
                    {"path": JWT_FILE, "content": JWT_TEXT}]},
    )
    result = asyncio.run(Pipeline(services_for(repo, scripted_server)).run("tune auth"))
    assert result.status == "review" and sorted(result.changeset.paths()) == ["app/auth.py", JWT_FILE], result.outcomes
    before = snapshot(repo)
    _fill(small_disk, leave_bytes=8 * 1024)  # two pages: the backup and the journal fit, the writes do not

    applied = run_aether(repo, "runs", "apply", result.run_id, "--yes")

    assert applied.returncode == 1, applied.stdout + applied.stderr
    assert "No space left on device" in applied.stderr and "every file already written was restored" in applied.stderr
    assert "disk space" in applied.stderr and "Traceback" not in applied.stderr
    (small_disk / "filler").unlink()
    assert_untouched(before, repo)
    assert leftovers(repo) == []
