"""The hook installer (chaining, restore, core.hooksPath) and the post-commit update, locked or not."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest
from index_support import git, wait_until, write

from aetherflow.errors import AetherError
from aetherflow.hooks import installer
from aetherflow.hooks.post_commit import log_file
from aetherflow.index.indexer import Indexer, IndexSummary, read_meta
from aetherflow.index.lock import PendingMarker, run_serialised
from aetherflow.index.service import index_dir
from aetherflow.index.store import EdgeStore

MARKER_HOOK = "#!/bin/sh\necho ran >> \"$(git rev-parse --show-toplevel)/chained-ran.txt\"\n"


def _existing_hook(repo: Path, text: str = MARKER_HOOK, name: str = "post-commit") -> Path:
    path = installer.hooks_dir(repo) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def _git_commit(repo: Path, env: dict[str, str], message: str = "via git") -> subprocess.CompletedProcess[str]:
    git(repo, "add", "-A")
    return subprocess.run(["git", "commit", "-q", "-m", message], cwd=repo, env=env, capture_output=True, text=True)


def _wait_for_background_update(repo: Path) -> None:
    """Let the update a commit started finish, so no process outlives the test."""
    wait_until(lambda: log_file(repo).exists() and "indexed" in log_file(repo).read_text(), timeout_s=120,
               what="the background update")


def test_install_is_idempotent_and_calls_this_python(make_repo) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    assert installer.status(repo, "post-commit").state == "absent"
    first = installer.install(repo, "post-commit")
    text = first.path.read_text()
    assert first.state == "ours" and first.chained is None and first.python == sys.executable
    assert f"{sys.executable} -m aetherflow hook run post-commit" in text
    assert first.path.stat().st_mode & stat.S_IXUSR
    second = installer.install(repo, "post-commit")
    assert second.path.read_text() == text and second.chained is None
    assert sorted(p.name for p in first.path.parent.iterdir() if not p.name.endswith(".sample")) == ["post-commit"]


def test_existing_hook_is_chained_and_restored(make_repo, aether_env) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    original = _existing_hook(repo)
    status = installer.install(repo, "post-commit")
    assert status.chained is not None and status.chained.read_text() == MARKER_HOOK
    assert "chaining your previous hook" in status.describe()
    installer.install(repo, "post-commit")  # idempotent: the chained hook stays where it is
    write(repo, {"b.py": "y = 2\n"})
    done = _git_commit(repo, aether_env)
    assert done.returncode == 0, done.stderr
    assert (repo / "chained-ran.txt").read_text() == "ran\n"
    _wait_for_background_update(repo)
    restored = installer.uninstall(repo, "post-commit")
    assert restored.state == "foreign" and original.read_text() == MARKER_HOOK
    assert not (original.parent / ("post-commit" + installer.CHAINED_SUFFIX)).exists()
    assert installer.uninstall(repo, "post-commit").state == "foreign"  # never removes a hook that is not ours


def test_failing_chained_pre_commit_still_blocks(make_repo) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    _existing_hook(repo, "#!/bin/sh\nexit 3\n", name="pre-commit")
    installer.install(repo, "pre-commit", python="/nonexistent/python")
    write(repo, {"b.py": "y = 2\n"})
    git(repo, "add", "-A")
    blocked = git(repo, "commit", "-q", "-m", "x", check=False)
    assert blocked.returncode != 0  # the user's own hook still decides, exit status included


def test_hooks_path_is_honoured(make_repo, aether_env) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    git(repo, "config", "core.hooksPath", ".githooks")
    assert installer.hooks_dir(repo) == repo / ".githooks"
    _existing_hook(repo)
    status = installer.install(repo, "post-commit")
    assert status.path == repo / ".githooks" / "post-commit"
    write(repo, {"b.py": "y = 2\n"})
    done = _git_commit(repo, aether_env)
    assert done.returncode == 0 and (repo / "chained-ran.txt").exists()
    _wait_for_background_update(repo)


def test_install_refuses_to_lose_a_hook(make_repo) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    _existing_hook(repo)
    installer.install(repo, "post-commit")
    _existing_hook(repo, "#!/bin/sh\necho other\n")  # the user replaced our hook; theirs is still chained
    with pytest.raises(AetherError) as refused:
        installer.install(repo, "post-commit")
    assert "would lose one of them" in str(refused.value)
    assert (installer.hooks_dir(repo) / "post-commit").read_text() == "#!/bin/sh\necho other\n"


def test_missing_python_never_fails_the_commit(make_repo) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    installer.install(repo, "post-commit", python="/nonexistent/python")
    assert "no longer exists" in installer.status(repo, "post-commit").describe()
    write(repo, {"b.py": "y = 2\n"})
    git(repo, "add", "-A")
    done = git(repo, "commit", "-q", "-m", "x", check=False)
    assert done.returncode == 0 and "hook skipped" in done.stderr


def test_post_commit_hook_updates_the_index_in_the_background(make_repo, aether_env) -> None:
    repo = make_repo({"a.py": "def first():\n    return 1\n"})
    installer.install(repo, "post-commit")
    write(repo, {"b.py": "def second_function_added():\n    return 2\n"})
    done = _git_commit(repo, aether_env)
    assert done.returncode == 0 and done.stderr == ""
    head = git(repo, "rev-parse", "HEAD").stdout.strip()
    log = log_file(repo)
    wait_until(lambda: f"indexed {head}" in log.read_text(), timeout_s=120, what="the background update")
    store = EdgeStore(index_dir(repo))
    meta = read_meta(store)
    assert meta is not None and meta.complete and meta.commit == head
    assert {p["path"] for p in store.scroll_records("file")} == {"a.py", "b.py"}
    store.close()


def test_commit_while_the_index_is_held_is_indexed_afterwards(make_repo, aether_env, index_config, embedder) -> None:
    repo = make_repo({"a.py": "def first():\n    return 1\n"})
    installer.install(repo, "post-commit")
    heads: list[str] = []

    def work() -> IndexSummary | None:
        if not heads:  # first run: holds the lock while a commit happens
            write(repo, {"late.py": "def committed_while_locked():\n    return 3\n"})
            done = _git_commit(repo, aether_env)
            assert done.returncode == 0 and done.stderr == ""
            heads.append(git(repo, "rev-parse", "HEAD").stdout.strip())
            wait_until(lambda: "update left pending" in log_file(repo).read_text(), what="the hook to give up")
            assert PendingMarker(repo).is_set()
            return None
        store = EdgeStore(index_dir(repo))
        try:
            return Indexer(repo, index_config, store, embedder).update()
        finally:
            store.close()

    got, results = run_serialised(repo, work, timeout_s=0)
    assert got and len(results) == 2
    second = results[1]
    assert second is not None and second.commit == heads[0]
    assert not PendingMarker(repo).is_set()


def test_status_reports_foreign_hooks(make_repo) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    _existing_hook(repo)
    status = installer.status(repo, "post-commit")
    assert status.state == "foreign" and "not AetherFlow's" in status.describe()
