"""The invariants every chaos run must keep, whatever the models said (issue 7, the chaos model).

- nothing outside the repository written: the fake home, the sibling folder and everything else in the run's
  folder keep their bytes, and nothing new appears there;
- nothing from outside the repository read for a model: no canary byte in any request the server received;
- no user byte lost: after reject or undo the user's tree, status, index and HEAD are exactly as before; after an
  accept, every applied file holds exactly the accepted content, its diff was made against the user's own bytes
  (their staged, unstaged or untracked change included), and every other file is untouched; the index never moves;
- no protected path written (git's config, hooks and info, aetherflow.toml), and none in a change set;
- no write aimed at a hostile path landed anywhere (its content marks it; only the run's trace may quote it);
- no temp file or pending journal left behind, and no worktree left for a run that was applied or rejected;
- a ledger that matches the calls made (see `ledger_problems`), and a budget never exceeded.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from adversarial_support import Snapshot, snapshot

from aetherflow.events import CallFailed, CallFallback, CallFinished, CallRetry, Event
from aetherflow.orchestrator.pipeline import RunResult
from aetherflow.testing.chaos import ChaosTally
from aetherflow.testing.chaos_replies import HOSTILE_MARK
from aetherflow.testing.settings import FAST_PRICE, STRONG_PRICE
from aetherflow.workspace.safety import is_protected

PRICES = {"fast": FAST_PRICE, "strong": STRONG_PRICE}
# How an attempt ends when the client gives up on a reply the server sent whole: the gateway's timeout, or
# LiteLLM's guard against a model repeating one chunk (it raises after 100 identical chunks).
GAVE_UP_MARKS = ("gateway.timeout_s", "repeating the same chunk")
# Temp names of the workspace, the apply journal, the run state and the trust store.
_TEMP = re.compile(r"(\.aether-tmp$|\.aether-[^/]*\.tmp$|^\.state-.*\.json$|^\.trusted-)")
Violation = tuple[str, str]


@dataclass
class Evidence:
    """What a run left to judge it by: the states before, what the product returned and recorded, what was sent."""

    repo: Path
    parent: Path
    before: Snapshot
    outside_before: dict[str, str | bytes]
    protected_before: dict[str, bytes]
    budget_usd: float | None
    canaries: list[bytes]
    result: RunResult | None = None
    applied: list[str] = field(default_factory=list)
    ledger_rows: list[dict[str, object]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    tally: ChaosTally = field(default_factory=ChaosTally)
    requests: list[bytes] = field(default_factory=list)


def outside_state(parent: Path, repo: Path) -> dict[str, str | bytes]:
    """Every entry of the run's folder outside the repository (and its temp folder, checked on its own): file
    bytes, link targets, folders."""
    found: dict[str, str | bytes] = {}
    skip = {repo, parent / "tmp"}
    for folder, dirs, files in os.walk(parent, followlinks=False):
        here = Path(folder)
        if here in skip:
            dirs.clear()
            continue
        for name in dirs + files:
            path = here / name
            rel = path.relative_to(parent).as_posix()
            if path in skip:
                continue
            if path.is_symlink():
                found[rel] = f"link -> {os.readlink(path)}"
            elif path.is_dir():
                found[rel] = "folder"
            else:
                found[rel] = path.read_bytes()
    return found


def protected_state(repo: Path) -> dict[str, bytes]:
    """The bytes of git's config, HEAD, hooks and info, and of every protected file in the work tree."""
    git = repo / ".git"
    paths = [git / "config", git / "HEAD"]
    for folder in (git / "hooks", git / "info"):
        paths += [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
    state = {p.relative_to(repo).as_posix(): p.read_bytes() for p in paths if p.is_file()}
    for path in repo.rglob("*"):
        rel = path.relative_to(repo).as_posix()
        if rel.split("/")[0] not in (".git", ".aetherflow") and path.is_file() and is_protected(rel):
            state[rel] = path.read_bytes()
    return state


def check_run(e: Evidence) -> list[Violation]:
    """Every invariant the run broke, as (kind, detail)."""
    found: list[Violation] = []
    outside = outside_state(e.parent, e.repo)
    changed = sorted(k for k in set(outside) | set(e.outside_before) if outside.get(k) != e.outside_before.get(k))
    if changed:
        found.append(("outside_write", f"changed or new beside the repository: {changed[:10]}"))
    leaks = sorted({c.decode() for c in e.canaries for body in e.requests if c in body})
    if leaks:
        found.append(("outside_read", f"bytes from outside the repository reached a model: {leaks}"))
    protected = protected_state(e.repo)
    touched = sorted(k for k in set(protected) | set(e.protected_before)
                     if protected.get(k) != e.protected_before.get(k))
    if touched:
        found.append(("protected_write", f"protected files changed: {touched}"))
    if e.result is not None and e.result.changeset is not None:
        bad = [p for p in e.result.changeset.paths() if is_protected(p)]
        if bad:
            found.append(("protected_write", f"protected paths in the change set: {bad}"))
    found += landed_problems(e)
    found += user_bytes_problems(e)
    found += leftover_problems(e)
    found += ledger_problems(e)
    return found


def landed_problems(e: Evidence) -> list[Violation]:
    """Every write the chaos model aimed at a hostile path carries HOSTILE_MARK. It may appear in the run's own
    records (the trace logs tool arguments), nowhere else: not beside the repository, not in the user's files, not
    in the worktree, not in the state folder."""
    mark = HOSTILE_MARK.encode()
    records = e.repo / ".aetherflow" / "runs"
    landed = []
    for folder, dirs, files in os.walk(e.parent, followlinks=False):
        here = Path(folder)
        dirs[:] = [d for d in dirs if d != ".git" and here / d != records]
        for name in files:
            path = here / name
            if not path.is_symlink() and path.stat().st_size < 20_000_000 and mark in path.read_bytes():
                landed.append(path.relative_to(e.parent).as_posix())
    return [("hostile_write", f"a write aimed at a hostile path landed in: {landed[:10]}")] if landed else []


def user_bytes_problems(e: Evidence) -> list[Violation]:
    """Lost user bytes: see the module docstring for what an accepted change may and may not do."""
    after, before = snapshot(e.repo), e.before
    found: list[Violation] = []
    if (after.staged, after.staged_diff, after.head) != (before.staged, before.staged_diff, before.head):
        found.append(("user_bytes", "the git index or HEAD changed"))
    applied = set(e.applied)
    if not applied and after.status != before.status:
        found.append(("user_bytes", f"git status changed:\n{before.status}---\n{after.status}"))
    for rel in sorted(set(before.files) | set(after.files)):
        if rel not in applied and before.files.get(rel) != after.files.get(rel):
            found.append(("user_bytes", f"{rel} changed without being accepted"))
    changeset = e.result.changeset if e.result is not None else None
    for rel in sorted(applied):
        change = changeset.get(rel) if changeset is not None else None
        if change is None:
            found.append(("user_bytes", f"{rel} was applied but is not in the change set"))
            continue
        if rel in before.files and not change.binary and (change.old_text or "").encode() != before.files[rel]:
            found.append(("user_bytes", f"{rel}: the accepted diff was not made against the user's own bytes"))
        expected = None if change.status == "deleted" else (change.new_text or "").encode()
        if not change.binary and after.files.get(rel) != expected:
            found.append(("user_bytes", f"{rel} does not hold exactly the accepted content"))
    return found


def leftover_problems(e: Evidence) -> list[Violation]:
    """Temp files anywhere in the repository, pending journals, and worktrees of runs that have ended."""
    found: list[Violation] = []
    for folder, dirs, files in os.walk(e.repo, followlinks=False):
        if Path(folder) == e.repo / ".git":
            dirs.clear()
            continue
        temps = [f for f in files if _TEMP.search(f) or (Path(folder).name == "journal" and f.endswith(".tmp"))]
        if temps:
            found.append(("temp_leftover", f"temp files left in {folder}: {temps}"))
    strays = sorted(p.name for p in (e.parent / "tmp").iterdir()) if (e.parent / "tmp").is_dir() else []
    if strays:
        found.append(("temp_leftover", f"temporary files left in the temp folder: {strays[:10]}"))
    journal = e.repo / ".aetherflow" / "journal"
    for path in journal.glob("*.json") if journal.is_dir() else []:
        if json.loads(path.read_text()).get("state") == "pending":
            found.append(("temp_leftover", f"a pending journal was left: {path.name}"))
    ended = e.result is not None and e.result.changeset is not None and e.result.changeset.files
    if ended and (e.repo / ".aetherflow" / "worktrees" / e.result.run_id).exists():
        found.append(("temp_leftover", "the run's worktree is still there after it was applied or rejected"))
    return found


def ledger_problems(e: Evidence) -> list[Violation]:
    """The ledger against the calls made.

    Each gateway call ends with exactly one CallFinished or CallFailed event and one ledger row. A call bills its
    successful rounds: the first round, and for structured output possibly a repair round. So, with R the replies
    the chaos server completed: sum of row costs == cost of R at the catalogue prices; rows that billed something
    (status ok, or failed with a cost) == the completed first-round replies; completed repair replies <= rows.
    A reply the client gave up on (its attempt timed out, or LiteLLM aborted it as a repetition) was sent but is
    not billed by the product, which releases a failed attempt's reservation; a run where that happened only has
    to stay at or below those figures. With a budget, the total never passes it.
    """
    found: list[Violation] = []
    rows = e.ledger_rows
    run_id = e.result.run_id if e.result is not None else None
    ids = [str(r["call_id"]) for r in rows]
    if len(set(ids)) != len(ids):
        found.append(("ledger", "a call has more than one ledger row"))
    if any(r["run_id"] is None or (run_id is not None and r["run_id"] != run_id) for r in rows):
        found.append(("ledger", "a call row is not attributed to the run"))
    terminal = [ev.call_id for ev in e.events if isinstance(ev, CallFinished | CallFailed)]
    if sorted(terminal) != sorted(ids):
        found.append(("ledger", f"ledger rows ({len(ids)}) differ from the calls that ended ({len(terminal)})"))
    total = sum(float(r["cost_usd"]) for r in rows)  # type: ignore[arg-type]
    billed = e.tally.cost_usd(PRICES)
    first_rounds = sum(1 for b in e.tally.billed if not b.repair)
    repairs = len(e.tally.billed) - first_rounds
    billing_rows = sum(1 for r in rows if r["status"] == "ok" or float(r["cost_usd"]) > 0)  # type: ignore[arg-type]
    if gave_up(e.events):
        if total > billed + 1e-12 or billing_rows > first_rounds:
            found.append(("ledger", f"with a reply given up: ledger ${total:.8f} / {billing_rows} billing rows exceed "
                                    f"the server's ${billed:.8f} / {first_rounds} first-round replies"))
    elif not math.isclose(total, billed, rel_tol=1e-9, abs_tol=1e-12) or billing_rows != first_rounds:
        found.append(("ledger", f"ledger ${total:.8f} over {billing_rows} billing rows, but the server completed "
                                f"{first_rounds} first-round replies costing ${billed:.8f} in all"))
    if repairs > len(rows):
        found.append(("ledger", f"{repairs} repair replies completed for only {len(rows)} calls"))
    if e.result is not None and not math.isclose(e.result.cost_usd, total, rel_tol=1e-9, abs_tol=1e-12):
        found.append(("ledger", f"the run reports ${e.result.cost_usd:.8f}, its ledger rows sum to ${total:.8f}"))
    if e.budget_usd is not None and total > e.budget_usd + 1e-9:
        found.append(("budget", f"spent ${total:.6f}, more than the per-run budget of ${e.budget_usd}"))
    return found


def gave_up(events: list[Event]) -> bool:
    """True when the client gave up on some reply of the run (timeout, repetition guard): it was never billed."""
    return any(mark in _event_text(event) for event in events for mark in GAVE_UP_MARKS)


def _event_text(event: Event) -> str:
    if isinstance(event, CallRetry | CallFailed):
        return event.error
    if isinstance(event, CallFallback):
        return event.reason
    return ""
