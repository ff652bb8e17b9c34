"""Check-driven attempts: fix rounds in one conversation, fresh candidates at rising temperatures, then give up."""

from __future__ import annotations

import pytest

from aetherflow.orchestrator.agent import AgentResult
from aetherflow.orchestrator.attempts import AttemptLog, ValidationFailed, temperature, until_checks_pass
from aetherflow.workspace.validate import CheckResult


class Script:
    """Candidates whose answers are scripted as 'pass', 'fail' or 'none' (no edit), in order."""

    def __init__(self, answers: list[list[str]]) -> None:
        self.answers = answers
        self.calls: list[tuple[int, str, float | None, str | None]] = []
        self.tree = "base"
        self.taken_back = 0
        self.sessions = 0

    def session(self) -> "Candidate":
        self.sessions += 1
        return Candidate(self, self.sessions - 1)


class Candidate:
    def __init__(self, script: Script, index: int) -> None:
        self.script, self.index, self.round, self.cost = script, index, 0, 0.0

    async def first(self, temperature: float | None) -> AgentResult:
        return self._answer(temperature, None)

    async def fix(self, output: str, temperature: float | None = None) -> AgentResult:
        return self._answer(temperature, output)

    def _answer(self, temperature: float | None, output: str | None) -> AgentResult:
        answer = self.script.answers[self.index][self.round]
        if answer == "fail" and self.round:
            answer = f"fail{self.round}"  # a fix that changes the files, still failing
        self.script.calls.append((self.index, answer, temperature, output))
        self.round += 1
        self.cost += 0.01
        if answer == "none":
            return AgentResult(status="failed", text="", reason="no usable edit", steps=1, cost_usd=self.cost)
        self.script.tree = answer.removesuffix("=")  # "fail=": the same files as the answer before
        return AgentResult(status="done", text="ok", steps=1, edits=["a.py"], cost_usd=self.cost)


async def _verify(script: Script) -> list[CheckResult]:
    ok = script.tree == "pass"
    return [CheckResult(name="tests", ok=ok, output="1 passed" if ok else "FAILED test_a - assert 1 == 2", duration_s=0)]


async def _run(script: Script, samples: int = 3, fix_rounds: int = 1) -> tuple[AgentResult, AttemptLog]:
    log = AttemptLog()

    async def take_back() -> None:
        script.taken_back += 1
        script.tree = "base"

    result = await until_checks_pass(script.session, lambda paths: _verify(script), take_back, log,
                                     samples=samples, fix_rounds=fix_rounds, fingerprint=lambda: script.tree)
    return result, log


async def test_a_first_answer_that_passes_ends_it() -> None:
    script = Script([["pass"]])

    result, log = await _run(script)

    assert result.status == "done" and log.first_try_ok is True and log.candidates == 1 and script.taken_back == 0


async def test_a_fix_round_is_shown_the_failing_output() -> None:
    script = Script([["fail", "pass"]])

    _, log = await _run(script)

    assert [c[1] for c in script.calls] == ["fail", "pass"]
    assert "FAILED test_a" in (script.calls[1][3] or "")
    assert log.first_try_ok is False and log.cost_usd == pytest.approx(0.02)


async def test_a_new_candidate_starts_from_the_original_state_at_a_higher_temperature() -> None:
    script = Script([["fail", "fail"], ["none"], ["pass"]])

    _, log = await _run(script)

    assert log.candidates == 3 and script.taken_back == 2
    temps = [c[2] for c in script.calls if c[3] is None]
    assert temps[0] is None and temps[1] < temps[2] <= 1.0


async def test_when_no_candidate_passes_it_raises_with_what_failed() -> None:
    script = Script([["fail", "fail"], ["fail", "fail"]])

    with pytest.raises(ValidationFailed) as failed:
        await _run(script, samples=2)

    assert "2 candidate(s)" in failed.value.message and "FAILED test_a" in failed.value.message


async def test_a_fix_that_changes_nothing_is_not_checked_again_and_the_budget_goes_to_new_candidates() -> None:
    script = Script([["fail", "fail="], ["fail"], ["fail"], ["pass"]])
    checked: list[str] = []

    async def verify(paths: list[str]) -> list[CheckResult]:
        checked.append(script.tree)
        return await _verify(script)

    log = AttemptLog()

    async def take_back() -> None:
        script.tree = "base"

    result = await until_checks_pass(script.session, verify, take_back, log, samples=3, fix_rounds=1,
                                     fingerprint=lambda: script.tree)

    assert result.status == "done" and log.candidates == 4 and log.rounds == 5  # 2 + 1 + 1 + 1 answers of 6
    assert checked == ["fail", "fail", "fail", "pass"]  # the repeated answer was not checked
    assert [c[3] is None for c in script.calls] == [True, False, True, True, True]  # no fix rounds after it


async def test_the_answer_budget_bounds_the_candidates_when_fixes_change_nothing() -> None:
    script = Script([["fail", "fail="], ["fail"], ["fail"], ["fail"]])

    with pytest.raises(ValidationFailed):
        await _run(script, samples=2, fix_rounds=1)

    assert len(script.calls) == 4 and script.sessions == 3


async def test_fixes_that_change_the_files_keep_their_rounds() -> None:
    script = Script([["fail", "fail"], ["fail", "fail"]])

    with pytest.raises(ValidationFailed):
        await _run(script, samples=2, fix_rounds=1)

    assert [c[3] is None for c in script.calls] == [True, False, True, False]


def test_temperatures_rise_from_the_agents_own() -> None:
    assert [temperature(i) for i in range(6)] == [None, 0.5, 0.7, 0.9, 1.0, 1.0]
