"""The run's worktree: based on what the user sees, isolated from the user's tree, index and untracked files."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from aetherflow.errors import NotARepositoryError, UnsafePathError, UsageError
from aetherflow.workspace.edits import EditError
from aetherflow.workspace.worktree import Workspace

from workspace_support import git, make_repo, user_state


def _dirty(repo: Path) -> None:
    """Staged, unstaged, untracked, ignored and deleted changes, including one file both staged and unstaged."""
    (repo / "app/auth.py").write_text("def login(user):\n    return True\n")  # unstaged
    (repo / "README.md").write_text("# Demo, staged\n")
    git(repo, "add", "README.md")
    (repo / "README.md").write_text("# Demo, staged then edited\n")  # staged + unstaged
    (repo / "app/new_module.py").write_text("VALUE = 1\n")  # untracked
    (repo / "app/staged_new.py").write_text("X = 2\n")
    git(repo, "add", "app/staged_new.py")  # staged addition
    (repo / "debug.log").write_text("ignored\n")  # ignored
    (repo / "build").mkdir()
    (repo / "build/out.txt").write_text("ignored too\n")
    (repo / "app/util.py").unlink()  # unstaged deletion


def test_snapshot_is_what_the_user_sees(repo: Path) -> None:
    _dirty(repo)
    ws = Workspace.create(repo, "run1")
    assert ws.root == repo / ".aetherflow/worktrees/run1"
    for rel in ("app/auth.py", "README.md", "app/new_module.py", "app/staged_new.py", "app/__init__.py"):
        assert (ws.root / rel).read_bytes() == (repo / rel).read_bytes(), rel
    assert not (ws.root / "app/util.py").exists()
    assert not (ws.root / "debug.log").exists()
    assert not (ws.root / "build").exists()
    # The base commit holds that state: nothing left to commit in the worktree, and it is the worktree's HEAD.
    assert git(ws.root, "status", "--porcelain") == ""
    assert git(ws.root, "rev-parse", "HEAD").strip() == ws.base_commit
    assert git(ws.root, "log", "-1", "--format=%an").strip() == "AetherFlow"
    assert ws.user_snapshot["app/util.py"] is None
    assert ws.user_snapshot["app/new_module.py"] is not None
    assert "debug.log" not in ws.user_snapshot
    saved = json.loads((repo / ".aetherflow/runs/run1/snapshot.json").read_text())
    assert saved["snapshot"] == ws.user_snapshot and saved["base_commit"] == ws.base_commit


async def test_user_tree_index_and_untracked_files_are_untouched(repo: Path) -> None:
    _dirty(repo)
    before = user_state(repo)
    head = git(repo, "rev-parse", "HEAD")
    ws = Workspace.create(repo, "run1")
    assert user_state(repo) == before
    await ws.edit("app/auth.py", "return True", "return False")
    await ws.write_file("app/other.py", "Y = 3\n")
    await ws.delete_file("app/new_module.py")
    ws.changeset()
    assert user_state(repo) == before
    ws.remove()
    assert user_state(repo) == before
    assert git(repo, "rev-parse", "HEAD") == head
    assert "run1" not in git(repo, "worktree", "list")


def test_no_user_hook_runs(repo: Path) -> None:
    marker = repo.parent / "hook-ran"
    for hook in ("post-checkout", "pre-commit", "commit-msg", "post-commit"):
        path = repo / ".git/hooks" / hook
        path.write_text(f"#!/bin/sh\necho {hook} >> {marker}\n")
        path.chmod(0o755)
    (repo / "new.txt").write_text("x\n")
    Workspace.create(repo, "run1")
    assert not marker.exists()


def test_symlinks_are_copied_as_links_and_never_followed_out(tmp_path: Path) -> None:
    outside = tmp_path / "user-home"
    outside.mkdir()
    (outside / ".bashrc").write_text("export SECRET=1\n")
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    os.symlink(outside, repo / "homelink")  # untracked symlink to a folder outside
    os.symlink("a.txt", repo / "alias.txt")
    ws = Workspace.create(repo, "run1")
    assert (ws.root / "homelink").is_symlink()
    assert os.readlink(ws.root / "homelink") == str(outside)
    with pytest.raises(UnsafePathError):
        ws.read_text("homelink/.bashrc")
    with pytest.raises(UnsafePathError):
        asyncio.run(ws.write_file("homelink/.bashrc", "pwned\n"))
    assert (outside / ".bashrc").read_text() == "export SECRET=1\n"
    assert ws.read_text("alias.txt") == "a\n"
    with pytest.raises(EditError, match="symbolic link"):
        asyncio.run(ws.write_file("alias.txt", "b\n"))


@pytest.mark.parametrize("path", ["../../etc/passwd", "/etc/passwd", "~/.bashrc", "a/../../x", "..\\..\\x"])
async def test_traversal_is_refused_for_every_operation(repo: Path, path: str) -> None:
    ws = Workspace.create(repo, "run1")
    with pytest.raises(UnsafePathError):
        ws.read_text(path)
    with pytest.raises(UnsafePathError):
        await ws.write_file(path, "x")
    with pytest.raises(UnsafePathError):
        await ws.edit(path, "a", "b")
    with pytest.raises(UnsafePathError):
        await ws.delete_file(path)
    with pytest.raises(UnsafePathError):
        ws.exists(path)


async def test_protected_paths_need_explicit_permission(repo: Path) -> None:
    ws = Workspace.create(repo, "run1")
    for path in (".github/workflows/ci.yml", "aetherflow.toml", ".gitignore", ".aetherflow/x", "sub/.git/config"):
        with pytest.raises(UnsafePathError, match="protected"):
            await ws.write_file(path, "x = 1\n")
    # Git internals are neither readable nor writable, even with permission.
    with pytest.raises(UnsafePathError, match="inside .git/"):
        ws.read_text(".git/HEAD")
    with pytest.raises(UnsafePathError, match="inside .git/"):
        await ws.write_file(".git/config", "x", allow_protected=True)
    outcome = await ws.write_file("aetherflow.toml", "[checks]\n", allow_protected=True)
    assert outcome.action == "created" and (ws.root / "aetherflow.toml").read_text() == "[checks]\n"


async def test_parallel_edits_to_one_file_both_land(repo: Path) -> None:
    ws = Workspace.create(repo, "run1")
    edits = [ws.edit("app/util.py", f"line {i}\n", f"LINE {i}\n") for i in range(1, 31)]
    outcomes = await asyncio.gather(*edits)
    assert all(o.action == "edited" for o in outcomes)
    assert ws.read_text("app/util.py") == "".join(f"LINE {i}\n" for i in range(1, 31))


async def test_edit_outcomes_and_failures(repo: Path) -> None:
    ws = Workspace.create(repo, "run1")
    outcome = await ws.edit("app/auth.py", "    return check(user)", "    token = issue(user)\n    return token")
    assert (outcome.path, outcome.action, outcome.line, outcome.added, outcome.removed) == (
        "app/auth.py", "edited", 2, 2, 1,
    )  # fmt: skip
    assert outcome.message == "Edited app/auth.py at line 2: +2 -1 lines."
    with pytest.raises(EditError, match="not found in app/auth.py"):
        await ws.edit("app/auth.py", "def logout():", "")
    with pytest.raises(EditError, match="already exists"):
        await ws.write_file("README.md", "x", create_only=True)
    with pytest.raises(EditError, match="no file 'nope.py' to delete"):
        await ws.delete_file("nope.py")
    with pytest.raises(EditError, match="is a folder"):
        await ws.write_file("app", "x")
    created = await ws.edit("app/brand_new.py", "", "NEW = 1\n")
    assert created.action == "created" and ws.read_text("app/brand_new.py") == "NEW = 1\n"
    with pytest.raises(EditError, match="'README.md' is a file, not a folder"):
        await ws.write_file("README.md/inner.txt", "x")


def test_reading_and_listing(repo: Path) -> None:
    (repo / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0")
    ws = Workspace.create(repo, "run1")
    assert ws.read_text("app/util.py", 2, 3) == "line 2\nline 3\n"
    assert ws.read_text("app/util.py", 29) == "line 29\nline 30\n"
    assert ws.list_dir() == [".gitignore", "README.md", "app/", "logo.png"]
    assert ws.list_dir("app") == ["__init__.py", "auth.py", "util.py"]
    assert ws.exists("app/auth.py") and not ws.exists("app/missing.py")
    with pytest.raises(EditError, match="binary"):
        ws.read_text("logo.png")
    with pytest.raises(EditError, match="no file 'missing.py'"):
        ws.read_text("missing.py")
    with pytest.raises(EditError, match="has 30 lines"):
        ws.read_text("app/util.py", 40, 50)
    (ws.root / "big.txt").write_text("".join(f"row {i}\n" for i in range(400_000)))
    with pytest.raises(EditError, match="read a line range"):
        ws.read_text("big.txt")
    assert ws.read_text("big.txt", 300_000, 300_001) == "row 299999\nrow 300000\n"


async def test_changeset_equals_expected_diff(repo: Path) -> None:
    (repo / "notes.txt").write_text("untracked at start\n")
    ws = Workspace.create(repo, "run1")
    await ws.edit("app/auth.py", "return bool(user)", "return user is not None")
    await ws.write_file("app/jwt.py", "SECRET_LEN = 32\n")
    await ws.delete_file("notes.txt")
    (ws.root / "run.log").write_text("ignored output of a check\n")
    (ws.root / "image.bin").write_bytes(b"\0\1\2")
    changeset = ws.changeset()
    assert changeset.paths() == ["app/auth.py", "app/jwt.py", "image.bin", "notes.txt"]
    assert changeset.get("image.bin").binary  # type: ignore[union-attr]
    assert [c.status for c in changeset.files] == ["modified", "added", "added", "deleted"]
    assert changeset.get("app/auth.py").diff() == (  # type: ignore[union-attr]
        "diff --git a/app/auth.py b/app/auth.py\n--- a/app/auth.py\n+++ b/app/auth.py\n"
        "@@ -3,4 +3,4 @@\n \n \n def check(user):\n-    return bool(user)\n+    return user is not None\n"
    )
    assert changeset.get("notes.txt").old_text == "untracked at start\n"  # type: ignore[union-attr]


async def test_open_resumes_and_bad_cases_are_clear(repo: Path, tmp_path: Path) -> None:
    ws = Workspace.create(repo, "run1")
    await ws.write_file("x.py", "X = 1\n")
    again = Workspace.open(repo, "run1")
    assert again.root == ws.root and again.base_commit == ws.base_commit
    assert again.user_snapshot == ws.user_snapshot
    assert again.changeset().paths() == ["x.py"]
    with pytest.raises(UsageError, match="already exists"):
        Workspace.create(repo, "run1")
    with pytest.raises(UsageError, match="no workspace to resume"):
        Workspace.open(repo, "other")
    with pytest.raises(UsageError, match="not valid"):
        Workspace.create(repo, "../escape")
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    with pytest.raises(UsageError, match="no commit yet") as info:
        Workspace.create(empty, "run1")
    assert "git commit" in (info.value.hint or "")
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(NotARepositoryError):
        Workspace.create(plain, "run1")


def test_remove_is_idempotent(repo: Path) -> None:
    ws = Workspace.create(repo, "run1")
    ws.remove()
    ws.remove()
    assert not ws.root.exists()
    assert git(repo, "worktree", "list").count("\n") == 1
