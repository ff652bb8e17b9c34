"""Check-driven attempts: make an edit, run the project's checks, feed failures back, resample, then give up.

This is how a cheap model is lifted above what one call of it does (the brief's answers to "quality threshold not
met", section 6.1: regenerate with different parameters, combine attempts, escalate):
1. the agent answers at its own temperature; its edits are checked (syntax of the changed files, then the
   configured check commands such as the tests);
2. while they fail, up to `fix_rounds` fix rounds show the agent what the checks said (it repairs its own work);
3. still failing, the edits are taken back and a new candidate is sampled at a higher temperature; the first
   candidate that passes wins;
4. none passes within the answer budget: ValidationFailed, and the scheduler escalates the subtask to the next
   stronger model.
The answer budget is `samples * (1 + fix_rounds)` answers. A fix round that leaves the files exactly as they were
shows that this model does not use the checks' output (small models often repeat themselves verbatim): the rest of
the budget then goes to fresh candidates without fix rounds, which is what lifts such a model (measured in
bench/bench_tasks.py). Every call goes through the gateway, so the budget bounds all of it. Candidates run one
after another: they share the run's worktree, and a local model generates one reply at a time anyway.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from aetherflow.errors import AetherError
from aetherflow.orchestrator.agent import AgentResult
from aetherflow.orchestrator.tools import truncate_middle
from aetherflow.workspace.validate import CheckResult

# How much of the checks' output a fix round shows: the head has the first failure, the tail the summary.
FEEDBACK_CHARS = 3000


class ValidationFailed(AetherError):
    """A subtask's edits still fail validation after its fix rounds (and candidates)."""


class Session(Protocol):
    """One candidate's conversation with an agent: a first answer, then fixes told what the checks said."""

    async def first(self, temperature: float | None) -> AgentResult: ...

    async def fix(self, output: str, temperature: float | None = None) -> AgentResult: ...


# Every AgentResult a Session returns carries the session's whole cost so far, fix rounds included.

@dataclass
class AttemptLog:
    """What the attempts did: for the outcome's cost, the ledger's first-try flag and the final message."""

    cost_usd: float = 0.0
    candidates: int = 0
    rounds: int = 0
    first_try_ok: bool | None = None
    last_failure: str = ""
    checks: list[CheckResult] = field(default_factory=list)
    # The latest answer whose edits are still in the worktree (None once they were taken back).
    kept: AgentResult | None = None


def temperature(index: int) -> float | None:
    """The temperature of candidate `index`: the agent's own first, then rising from 0.5 to 1.0."""
    return None if index == 0 else round(min(1.0, 0.3 + 0.2 * index), 2)


def feedback(failed: list[CheckResult]) -> str:
    """What a fix round is shown: each failed check's name and output, head and tail, within FEEDBACK_CHARS."""
    share = max(400, FEEDBACK_CHARS // max(1, len(failed)))
    return "\n\n".join(f"$ {r.name}\n{truncate_middle(r.output.strip(), share)}" for r in failed)


async def until_checks_pass(
    new_session: Callable[[], Session],
    verify: Callable[[list[str]], Awaitable[list[CheckResult]]],
    take_back: Callable[[], Awaitable[object]],
    log: AttemptLog,
    *,
    samples: int,
    fix_rounds: int,
    fingerprint: Callable[[], str] | None = None,
) -> AgentResult:
    """Run candidates until one's edits pass `verify`; raise ValidationFailed when none does.

    `verify(paths)` checks the worktree after edits to `paths` and returns every check's result; `take_back()`
    puts back what the failed candidate wrote before the next one starts from the same state; `fingerprint()`
    names the worktree's state (equal names, equal files), which tells a fix round that changed nothing. `log` is
    filled in as the attempts go, so a caller sees what was spent and tried also when this raises.
    """
    answers = samples * (1 + fix_rounds)
    rounds = fix_rounds
    while log.rounds < answers:
        if log.candidates:
            await take_back()
            log.kept = None
        temp = temperature(log.candidates)
        log.candidates += 1
        step = _Candidate(verify, fingerprint, log)
        passed = await step.run(new_session(), temp, min(rounds, answers - log.rounds - 1))
        if passed is not None:
            return passed
        if step.unchanged_fix:
            rounds = 0  # this model repeats itself when told what failed: spend its answers on new candidates
    raise ValidationFailed(
        f"the checks still fail after {log.candidates} candidate(s) and {log.rounds} answer(s): {log.last_failure}",
        "The subtask goes to a stronger model when one is configured (agent fallbacks or gateway.local_alias).",
    )


class _Candidate:
    """One candidate with its fix rounds."""

    def __init__(self, verify: Callable[[list[str]], Awaitable[list[CheckResult]]],
                 fingerprint: Callable[[], str] | None, log: AttemptLog) -> None:
        self.verify, self.fingerprint, self.log = verify, fingerprint, log
        self.unchanged_fix = False

    async def run(self, session: Session, temperature: float | None, fix_rounds: int) -> AgentResult | None:
        """Its passing result, or None."""
        log = self.log
        result = await session.first(temperature)
        try:
            for round_index in range(fix_rounds + 1):
                log.rounds += 1
                if result.status != "done":
                    log.last_failure = result.reason
                    return None
                log.kept = result
                log.checks = await self.verify(result.edits)
                failed = [r for r in log.checks if not r.ok]
                if log.first_try_ok is None:
                    log.first_try_ok = not failed
                if not failed:
                    return result
                log.last_failure = truncate_middle(failed[0].output.strip(), 300)
                if round_index == fix_rounds:
                    return None
                before = self.fingerprint() if self.fingerprint else None
                result = await session.fix(feedback(failed), temperature)
                if before is not None and result.status == "done" and self.fingerprint() == before:
                    log.rounds += 1  # the same files again: the same checks would fail the same way
                    self.unchanged_fix = True
                    return None
            return None
        finally:
            log.cost_usd += result.cost_usd  # a session's results carry its cost so far
