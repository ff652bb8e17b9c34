"""Adversarial item 6 of issue 7: a crash (SIGKILL) during apply or undo.

The apply (and the undo) runs in a forked child that is SIGKILLed right before its Nth file-system mutation, for
every N from the first to the last (apply_fault_support). The next start (`recover_pending`, as `aether run`,
`runs apply` and `undo` call it) must leave the user's state exactly as before the apply or exactly as after it:
no half-written file, no temp file, no journal, no orphan backup.
"""

from __future__ import annotations

from pathlib import Path

from adversarial_support import Snapshot, assert_untouched, run_aether, snapshot
from apply_fault_support import apply_all, in_child, kill_at, leftovers, prepare, state_is

from aetherflow.workspace.apply import recover_pending, undo_last
from aetherflow.workspace.changeset import ChangeSet
from aetherflow.workspace.worktree import Workspace


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
        landed = state_is(demo_repo, {"before": before, "after": after})
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
        landed = state_is(demo_repo, {"before": before, "after": applied})
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
