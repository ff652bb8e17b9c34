"""The router's building blocks: switch conditions of a rule, and an agent's usable chain of models for a task.

An agent's chain is its model followed by its fallbacks; each alias is kept only when it can serve the task now:
it sees images if the task needs that, it is available (key present, circuit closed, local model installed), and
its worst-case cost fits what is left of the budget. Each alias left out carries the reason, for the route's
one-line explanation and for the error when nothing is left.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from aetherflow.config.models import AgentConfig, Price, Settings, SwitchWhen
from aetherflow.llm.pricing import worst_case_usd
from aetherflow.orchestrator.plan import TaskSpec

DropKind = Literal["disabled", "vision", "unavailable", "budget"]


@dataclass(frozen=True)
class Condition:
    """One switch condition of a rule, evaluated for a task."""

    label: str
    value: float
    threshold: float
    holds: bool

    @property
    def text(self) -> str:
        """E.g. "complexity 0.2 < 0.5" or "tokens 900 > 600"."""
        if self.label == "needs vision":
            return "needs vision" if self.holds else "no vision needed"
        op = ">" if self.holds else ("<=" if self.value == self.threshold else "<")
        return f"{self.label} {self.value:g} {op} {self.threshold:g}"


def switch_conditions(when: SwitchWhen, task: TaskSpec) -> list[Condition]:
    """Every condition the rule sets, evaluated for `task`; any one holding switches to the secondary agent."""
    numeric = [
        ("tokens", when.tokens_over, task.estimated_tokens),
        ("complexity", when.complexity_over, task.complexity),
        ("speed priority", when.speed_priority_over, task.speed_priority),
        ("cost sensitivity", when.cost_sensitivity_over, task.cost_sensitivity),
    ]
    conditions = [
        Condition(label, float(value), float(threshold), value > threshold)
        for label, threshold, value in numeric
        if threshold is not None
    ]
    if when.needs_vision:
        conditions.append(Condition("needs vision", float(task.needs_vision), 1.0, task.needs_vision))
    return conditions


@dataclass(frozen=True)
class Drop:
    """An alias (or a whole agent) left out of a route, and why."""

    alias: str
    kind: DropKind
    reason: str

    @property
    def text(self) -> str:
        return f"{self.alias}: {self.reason}"


@dataclass
class Option:
    """An agent with the models that can serve the task, cheapest-to-try first as configured."""

    agent: str
    chain: list[str]
    cost: float | None
    drops: list[Drop] = field(default_factory=list)

    def drops_text(self) -> str:
        return "; ".join(d.text for d in self.drops) or "no model configured"

    def skipped_note(self) -> str:
        """"; deepseek skipped: key DEEPSEEK_API_KEY missing" for aliases dropped before the chosen one."""
        if not self.chain:
            return ""
        return "".join(f"; {d.alias} skipped: {d.reason}" for d in self.drops if d.kind != "disabled")


class OptionBuilder:
    """Builds Options from the settings, an availability function and a price function."""

    def __init__(
        self,
        settings: Settings,
        availability: Callable[[str], tuple[bool, str]],
        price_of: Callable[[str], Price | None],
    ) -> None:
        self.settings = settings
        self._availability = availability
        self._price_of = price_of

    def build(
        self, agent_name: str, task: TaskSpec, remaining_usd: float | None, exclude: Iterable[str] = ()
    ) -> Option:
        """`agent_name` with its own chain (model, then fallbacks) filtered for `task`; aliases in `exclude` are
        left out silently."""
        agent = self.settings.agents.get(agent_name)
        if agent is None or not agent.enabled:
            return Option(agent_name, [], None, [Drop(agent_name, "disabled", "agent missing or disabled")])
        excluded = set(exclude)
        aliases = [a for a in dict.fromkeys([agent.model, *agent.fallbacks]) if a not in excluded]
        return self.from_aliases(agent_name, aliases, task, remaining_usd)

    def from_aliases(self, agent_name: str, aliases: list[str], task: TaskSpec, remaining_usd: float | None) -> Option:
        """`agent_name` served by those of `aliases` that can serve `task`, in the given order."""
        agent = self.settings.agents.get(agent_name)
        if agent is None or not agent.enabled:
            return Option(agent_name, [], None, [Drop(agent_name, "disabled", "agent missing or disabled")])
        option = Option(agent_name, [], None)
        for alias in aliases:
            drop = self.check(alias, agent, task, remaining_usd)
            if drop is None:
                option.chain.append(alias)
            elif not option.chain:
                option.drops.append(drop)
        if option.chain:
            option.cost = self.cost(option.chain[0], agent, task)
        return option

    def check(self, alias: str, agent: AgentConfig, task: TaskSpec, remaining_usd: float | None) -> Drop | None:
        """Why `alias` cannot serve `task` for `agent` now, or None when it can."""
        model = self.settings.models.get(alias)
        if model is None:
            return Drop(alias, "unavailable", "not in the model catalogue")
        if task.needs_vision and not model.supports("vision"):
            return Drop(alias, "vision", "cannot see images")
        ok, why = self._availability(alias)
        if not ok:
            return Drop(alias, "unavailable", why)
        if remaining_usd is None:
            return None
        cost = self.cost(alias, agent, task)
        if cost is None:
            return Drop(alias, "budget", "price unknown, so its cost cannot be bounded under a budget")
        if cost > remaining_usd:
            return Drop(alias, "budget", f"could cost up to ${cost:.4f}, ${remaining_usd:.4f} left")
        return None

    def cost(self, alias: str, agent: AgentConfig, task: TaskSpec) -> float | None:
        """Worst-case cost: the estimated prompt tokens in, the agent's whole output limit out."""
        price = self._price_of(alias)
        if price is None:
            return None
        return worst_case_usd(price, task.estimated_tokens, agent.max_output_tokens)

    def no_dearer(self, alias: str, than: str) -> bool:
        """Whether `alias` costs at most what `than` does per token, input and output both."""
        mine, theirs = self._price_of(alias), self._price_of(than)
        if mine is None or theirs is None:
            return False
        return mine.input <= theirs.input and mine.output <= theirs.output
