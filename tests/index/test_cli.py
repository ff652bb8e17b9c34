"""`aether index`, `aether search` and `aether hook` as a user runs them (subprocesses, real exit codes)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from index_support import git

from aetherflow.index.lock import IndexLock
from aetherflow.index.service import index_dir

PROJECT = {
    "shop/cart.py": (
        "def compute_cart_total(items):\n"
        "    \"\"\"Sum the price of every item in the basket.\"\"\"\n"
        "    return sum(i.price * i.quantity for i in items)\n"
    ),
    "shop/auth.py": "def hash_password(plain):\n    \"\"\"Derive a salted hash.\"\"\"\n    return plain[::-1]\n",
    "docs/guide.md": "# Guide\n\nInstall with pip.\n",
    "assets/logo.png": b"\x89PNG\r\n\x1a\n\x00\x00",
    "node_modules/left-pad/index.js": "module.exports = 1;\n",
    "yarn.lock": "# lock\n",
}


def test_index_then_search(make_repo, aether) -> None:
    repo = make_repo(PROJECT)
    built = aether(repo, "index")
    assert built.returncode == 0, built.stderr
    assert "Rebuilt the index (no index yet)" in built.stdout
    assert "3 files" in built.stdout
    for reason in ("binary: 1 · assets/logo.png", "vendored: 1 · node_modules/left-pad/index.js", "generated: 1"):
        assert reason in built.stdout
    again = aether(repo, "index", "--json")
    summary = json.loads(again.stdout)
    assert summary["files_indexed"] == 0 and summary["files_unchanged"] == 3 and not summary["rebuilt"]
    found = aether(repo, "search", "basket price total", "-k", "2")
    assert found.returncode == 0, found.stderr
    first = found.stdout.splitlines()[0]
    assert "shop/cart.py:1" in first and "compute_cart_total" in first
    assert "│ def compute_cart_total(items):" in found.stdout
    as_json = json.loads(aether(repo, "search", "hash_password", "--json", "--lang", "py", "-k", "1").stdout)
    assert as_json[0]["location"] == "shop/auth.py:1" and as_json[0]["symbol"] == "hash_password"
    none = aether(repo, "search", "install", "--path", "shop/")
    assert "docs/guide.md" not in none.stdout


def test_bad_places_get_clear_messages(make_repo, aether, tmp_path: Path) -> None:
    outside = tmp_path / "plain-folder"
    outside.mkdir()
    not_repo = aether(outside, "index")
    assert not_repo.returncode == 2 and "not inside a git work tree" in not_repo.stderr
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    in_bare = aether(bare, "index")
    assert in_bare.returncode == 2 and "bare git repository" in in_bare.stderr and "git clone" in in_bare.stderr
    empty = make_repo(name="empty")
    no_commits = aether(empty, "index")
    assert no_commits.returncode == 2 and "no commits yet" in no_commits.stderr
    assert "aether index --worktree" in no_commits.stderr
    no_index = aether(make_repo({"a.py": "x = 1\n"}, name="unindexed"), "search", "x")
    assert no_index.returncode == 1 and "Build it with `aether index`" in no_index.stderr
    for result in (not_repo, in_bare, no_commits, no_index):
        assert "Traceback" not in result.stderr


def test_second_indexer_names_the_lock_holder(make_repo, aether) -> None:
    repo = make_repo(PROJECT)
    lock = IndexLock(repo)
    assert lock.acquire()
    try:
        busy = aether(repo, "index", "--wait", "0")
    finally:
        lock.release()
    assert busy.returncode == 1
    assert f"pid {os.getpid()}" in busy.stderr and "--wait" in busy.stderr


def test_corrupted_index_folder_is_detected_and_rebuilt(make_repo, aether) -> None:
    repo = make_repo(PROJECT)
    assert aether(repo, "index").returncode == 0
    for item in (index_dir(repo) / "shard").iterdir():
        if item.is_file():
            item.write_text("corrupted")
    broken = aether(repo, "search", "cart")
    assert broken.returncode == 1 and "aether index --full" in broken.stderr
    assert "Traceback" not in broken.stderr
    rebuilt = aether(repo, "index", "--full")
    assert rebuilt.returncode == 0 and "full rebuild requested" in rebuilt.stdout
    assert "shop/cart.py" in aether(repo, "search", "cart total").stdout


def test_hook_commands(make_repo, aether) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    assert "not installed" in aether(repo, "hook", "status").stdout
    installed = aether(repo, "hook", "install")
    assert installed.returncode == 0 and "AetherFlow hook installed" in installed.stdout
    status = json.loads(aether(repo, "hook", "status", "--json").stdout)
    assert status[0]["state"] == "ours" and status[0]["python_exists"]
    removed = aether(repo, "hook", "uninstall")
    assert removed.returncode == 0 and "removed AetherFlow's post-commit hook" in removed.stdout
    unknown = aether(repo, "hook", "install", "pre-push")
    assert unknown.returncode == 2 and "Known hooks: post-commit" in unknown.stderr
