"""Item 2 (links out of the repository), for AetherFlow's own state: a `.aetherflow` that a cloned repository
carries as a symbolic link is never written through, by any command."""

from __future__ import annotations

from pathlib import Path

import pytest
from adversarial_support import assert_untouched, files_under, run_aether, snapshot

from aetherflow import paths
from aetherflow.errors import UnsafePathError
from aetherflow.ledger.store import Ledger


@pytest.fixture
def linked_state(demo_repo: Path, tmp_path: Path) -> Path:
    """`.aetherflow` in the repository links to a folder elsewhere (the attacker's choice of target)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (demo_repo / paths.STATE_DIR_NAME).symlink_to(elsewhere, target_is_directory=True)
    return elsewhere


def test_the_ledger_and_state_folder_refuse_a_linked_state_dir(demo_repo: Path, linked_state: Path) -> None:
    """Opening the ledger (every run and call is recorded there) refuses, naming the link and the next step."""
    with pytest.raises(UnsafePathError) as refused:
        Ledger(paths.state_dir(demo_repo) / "ledger.sqlite")

    assert str(paths.state_dir(demo_repo)) in refused.value.message and "symbolic link" in refused.value.message
    assert refused.value.hint is not None and "rm " in refused.value.hint
    assert files_under(linked_state) == {}


def test_commands_exit_with_the_reason_and_write_nothing_through_the_link(demo_repo: Path, linked_state: Path) -> None:
    """`aether stats` and `aether index` stop with exit 1 and the message; the link's target stays empty."""
    before = snapshot(demo_repo)

    results = [run_aether(demo_repo, "stats"), run_aether(demo_repo, "index")]

    for result in results:
        assert result.returncode == 1, result.stdout + result.stderr
        assert "will not keep its state" in result.stderr and "Traceback" not in result.stderr
    assert files_under(linked_state) == {}
    assert_untouched(before, demo_repo)
