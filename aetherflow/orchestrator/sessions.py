"""Sessions: one candidate's conversation with an agent, in the edit format of the agent's model.

- whole: a WholeFileAgent (files shown in full, whole files back, fixes in the same conversation);
- tools / diff: the ReAct tool loop (native tool calls, or SEARCH/REPLACE blocks in text), where a fix is a new
  loop told what the checks said: the agent reads the files it already changed with its tools.
Both report, in every AgentResult, the session's whole cost so far (attempts.Session's contract).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Awaitable

from aetherflow.config.models import AgentConfig
from aetherflow.orchestrator.agent import AgentResult

FIX_NOTE = (
    "Your previous edits do not pass validation. Fix exactly these problems, changing nothing else:\n{output}"
)

# Runs the tool loop once: (agent with the temperature to use, the note to add or None) -> its result.
LoopRunner = Callable[[AgentConfig, str | None], Awaitable[AgentResult]]


class LoopSession:
    """A candidate run by the tool loop; each fix is a fresh loop with the check output as its note."""

    def __init__(self, agent: AgentConfig, run_loop: LoopRunner) -> None:
        self.agent = agent
        self.run_loop = run_loop
        self.cost_usd = 0.0
        self.edits: list[str] = []

    async def first(self, temperature: float | None) -> AgentResult:
        return await self._round(temperature, None)

    async def fix(self, output: str, temperature: float | None = None) -> AgentResult:
        return await self._round(temperature, FIX_NOTE.format(output=output))

    async def _round(self, temperature: float | None, note: str | None) -> AgentResult:
        agent = self.agent if temperature is None else self.agent.model_copy(update={"temperature": temperature})
        result = await self.run_loop(agent, note)
        self.cost_usd += result.cost_usd
        self.edits += [p for p in result.edits if p not in self.edits]
        return result.model_copy(update={"cost_usd": self.cost_usd, "edits": list(self.edits)})
