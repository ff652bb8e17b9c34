"""The router: which agent and model serve a subtask, within the budget, with a fallback chain and a reason.

The decision matrix lives in the settings (`[[routing.rules]]`): a task type names a primary agent and a
secondary one with the conditions under which to switch. The router applies the rule, then drops models that
cannot serve the task (no vision when it needs it, unavailable, too dear for what is left of the budget), and,
once enough outcomes are recorded, prefers the model with the better success rate at no higher cost.
It never calls a model: availability and prices come in as functions, so the router is pure policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from pydantic import BaseModel, Field

from aetherflow.config.models import Price, RoutingRule, Settings
from aetherflow.errors import BudgetExceededError, ConfigError, ModelUnavailableError
from aetherflow.orchestrator.plan import TaskSpec
from aetherflow.orchestrator.router_options import Drop, Option, OptionBuilder, switch_conditions

Availability = Callable[[str], tuple[bool, str]]
PriceOf = Callable[[str], Price | None]


class RouteDecision(BaseModel):
    """Where one subtask goes: the agent (prompt, tools, role), the model alias, the fallback chain, and why."""

    task_id: str
    agent: str
    alias: str
    chain: list[str]
    reason: str
    estimated_cost_usd: float | None = None
    # Aliases this subtask already ran on (earlier attempts), so escalation never goes back to one of them.
    tried: list[str] = Field(default_factory=list)


class OutcomeStats(Protocol):
    """Recorded outcomes per (task type, model alias): (successes, samples). The ledger implements it."""

    def success_rates(self) -> dict[tuple[str, str], tuple[int, int]]: ...


class Router:
    """Routes subtasks to agents and models according to the settings' decision matrix."""

    def __init__(
        self,
        settings: Settings,
        availability: Availability,
        price_of: PriceOf,
        stats: OutcomeStats | None = None,
    ) -> None:
        self.settings = settings
        self._options = OptionBuilder(settings, availability, price_of)
        self._stats = stats

    # ---- the rule -----------------------------------------------------------------------------------------

    def rule_for(self, task_type: str) -> tuple[RoutingRule, str]:
        """The routing rule of `task_type` (the default type's when unknown) and a note when it was defaulted."""
        rules = {rule.task_type: rule for rule in self.settings.routing.rules}
        if task_type in rules:
            return rules[task_type], ""
        default = self.settings.routing.default_task_type
        if default not in rules:
            raise ConfigError(
                f"No routing rule covers task type '{task_type}', and the default type '{default}' has none either.",
                "Add [[routing.rules]] entries to aetherflow.toml (see aetherflow.toml.example).",
            )
        return rules[default], f"unknown type '{task_type}', routed as {default}; "

    # ---- routing ------------------------------------------------------------------------------------------

    def route(self, task: TaskSpec, remaining_budget_usd: float | None) -> RouteDecision:
        """The agent and model for `task`.

        Raises ModelUnavailableError when no model can serve it (with the reason of each one tried), and
        BudgetExceededError when some model could, but none fits what is left of the budget.
        """
        rule, note = self.rule_for(task.type)
        drops: list[Drop] = []
        hint_note = ""
        if task.agent is not None:
            hinted = self._hinted(task, rule, note, remaining_budget_usd, drops)
            if isinstance(hinted, RouteDecision):
                return hinted
            hint_note = hinted
        choice, other, why = self._rule_agents(rule, task)
        picked = self._options.build(choice, task, remaining_budget_usd)
        drops.extend(picked.drops)
        backup = self._options.build(other, task, remaining_budget_usd) if other else None
        if backup is not None:
            drops.extend(backup.drops)
        decision = self._decide(task, rule, picked, backup, why)
        if decision is None:
            decision = self._local_substitute(task, rule.task_type, choice, drops, remaining_budget_usd)
        if decision is None:
            raise self._no_route_error(task, drops)
        return decision.model_copy(update={"reason": note + hint_note + decision.reason})

    def _hinted(
        self, task: TaskSpec, rule: RoutingRule, note: str, remaining: float | None, drops: list[Drop]
    ) -> RouteDecision | str:
        """The planner's suggested agent when it is enabled and can serve; else a note saying why not."""
        assert task.agent is not None
        agent = self.settings.agents.get(task.agent)
        if agent is None or not agent.enabled:
            return f"planner's choice {task.agent} is not an enabled agent; "
        option = self._options.build(task.agent, task, remaining)
        if option.chain:
            why = "planner's choice" + option.skipped_note()
            return self._decision(task, rule.task_type, option, note + why)
        drops.extend(option.drops)
        return f"planner's choice {task.agent} cannot serve it ({option.drops_text()}); "

    def _rule_agents(self, rule: RoutingRule, task: TaskSpec) -> tuple[str, str | None, str]:
        """(the agent the rule chooses, the rule's other agent, the condition text that explains the choice)."""
        conditions = switch_conditions(rule.switch_when, task)
        holding = [c for c in conditions if c.holds]
        if rule.secondary is not None and holding:
            return rule.secondary, rule.primary, ", ".join(c.text for c in holding)
        why = "cheapest fitting"
        if conditions and rule.secondary is not None:
            why += "; " + ", ".join(c.text for c in conditions)
        return rule.primary, rule.secondary, why

    def _decide(
        self, task: TaskSpec, rule: RoutingRule, picked: Option, backup: Option | None, why: str
    ) -> RouteDecision | None:
        """The rule's choice when it can serve (or the learned better one), else the rule's other agent."""
        if picked.chain:
            learned = self._learned(rule.task_type, picked, backup)
            if learned is not None:
                better, because = learned
                return self._decision(task, rule.task_type, better, because + better.skipped_note())
            return self._decision(task, rule.task_type, picked, why + picked.skipped_note())
        if backup is not None and backup.chain:
            why = f"{picked.agent} cannot serve it ({picked.drops_text()})"
            return self._decision(task, rule.task_type, backup, why + backup.skipped_note())
        return None

    def _learned(self, task_type: str, picked: Option, backup: Option | None) -> tuple[Option, str] | None:
        """The rule's other agent when recorded outcomes show a better success rate at equal or lower cost."""
        if backup is None or not backup.chain or self._stats is None:
            return None
        if not self.settings.routing.learn_from_outcomes or backup.chain[0] == picked.chain[0]:
            return None
        if picked.cost is None or backup.cost is None or backup.cost > picked.cost:
            return None
        rates = self._stats.success_rates()
        mine, theirs = self._rate(rates, task_type, picked.chain[0]), self._rate(rates, task_type, backup.chain[0])
        if mine is None or theirs is None or theirs[0] <= mine[0]:
            return None
        because = (
            f"learned: success {theirs[1]} on {backup.chain[0]} vs {mine[1]} on {picked.chain[0]} "
            "at no higher cost"
        )
        return backup, because

    def _rate(
        self, rates: dict[tuple[str, str], tuple[int, int]], task_type: str, alias: str
    ) -> tuple[float, str] | None:
        """(success rate, "80% of 10") for a pair with enough samples, else None."""
        successes, samples = rates.get((task_type, alias), (0, 0))
        if samples < self.settings.routing.min_samples or samples == 0:
            return None
        rate = successes / samples
        return rate, f"{rate:.0%} of {samples}"

    def _local_substitute(
        self, task: TaskSpec, task_type: str, agent: str, drops: list[Drop], remaining: float | None
    ) -> RouteDecision | None:
        """The local model in place of unavailable remote ones, as the gateway does (gateway.missing_key)."""
        gateway = self.settings.gateway
        if gateway.missing_key != "local" or any(d.kind == "budget" for d in drops):
            return None
        option = self._options.from_aliases(agent, gateway.local_aliases, task, remaining)
        if not option.chain:
            drops.extend(option.drops)
            return None
        why = f"no configured model can serve it ({_drops_text(drops)}); using the local model"
        return self._decision(task, task_type, option, why)

    def _decision(self, task: TaskSpec, task_type: str, option: Option, why: str) -> RouteDecision:
        alias = option.chain[0]
        return RouteDecision(
            task_id=task.id,
            agent=option.agent,
            alias=alias,
            chain=list(option.chain),
            reason=f"{task_type} -> {option.agent} ({alias}): {why}",
            estimated_cost_usd=option.cost,
        )

    def _no_route_error(self, task: TaskSpec, drops: list[Drop]) -> ModelUnavailableError | BudgetExceededError:
        reasons = _drops_text(drops) or "no agent is configured for it"
        budget = [d for d in drops if d.kind == "budget"]
        if budget:
            return BudgetExceededError(
                f"No model for task '{task.id}' fits the remaining budget ({reasons}).",
                "Raise the limit with `--budget USD`, or lower the agents' max_output_tokens in aetherflow.toml.",
            )
        if task.needs_vision:
            seeing = sorted(a for a, m in self.settings.models.items() if m.supports("vision"))
            return ModelUnavailableError(
                f"Task '{task.id}' needs to see images, but no available model can ({reasons}).",
                f"Set the key of a vision-capable model ({', '.join(seeing) or 'none configured'}), "
                "or run without --image.",
            )
        return ModelUnavailableError(
            f"No model can serve task '{task.id}' ({reasons}).",
            "Set a provider key (`aether doctor` lists them), or pip install 'aetherflow[local]'.",
        )

    # ---- escalation ---------------------------------------------------------------------------------------

    def escalate(
        self, decision: RouteDecision, task: TaskSpec, remaining_budget_usd: float | None = None
    ) -> RouteDecision | None:
        """The next stronger route after `decision` failed validation: the rule's secondary agent if not yet
        used, else the next untried alias of the chain; None when nothing is left."""
        rule, _ = self.rule_for(task.type)
        tried = [*decision.tried, decision.alias]
        secondary = rule.secondary
        if secondary is not None and secondary != decision.agent and self._enabled(secondary):
            option = self._options.build(secondary, task, remaining_budget_usd, exclude=tried)
            if option.chain:
                why = f"escalated after {decision.agent} ({decision.alias}) failed" + option.skipped_note()
                return self._decision(task, rule.task_type, option, why).model_copy(update={"tried": tried})
        after = decision.chain.index(decision.alias) + 1 if decision.alias in decision.chain else 0
        rest = [a for a in decision.chain[after:] if a not in tried]
        option = self._options.from_aliases(decision.agent, rest, task, remaining_budget_usd)
        if option.chain:
            why = f"escalated to the next fallback after {decision.alias} failed" + option.skipped_note()
            return self._decision(task, rule.task_type, option, why).model_copy(update={"tried": tried})
        return None

    def _enabled(self, agent: str) -> bool:
        config = self.settings.agents.get(agent)
        return config is not None and config.enabled

    # ---- what `aether stats --routing` shows --------------------------------------------------------------

    def table(self) -> list[dict]:
        """One row per (task type, agent) of the routing rules: the agent's model, its recorded samples and
        success rate, and whether the router prefers it for a task that meets no switch condition."""
        rates = self._stats.success_rates() if self._stats is not None else {}
        rows: list[dict] = []
        for rule in self.settings.routing.rules:
            agents = [("primary", rule.primary)] + ([("secondary", rule.secondary)] if rule.secondary else [])
            preferred = self._preferred_slot(rule, rates)
            for slot, agent in agents:
                alias = self.settings.agents[agent].model
                successes, samples = rates.get((rule.task_type, alias), (0, 0))
                rows.append({
                    "task_type": rule.task_type, "slot": slot, "agent": agent, "alias": alias,
                    "samples": samples, "successes": successes,
                    "success_rate": successes / samples if samples else None,
                    "preferred": slot == preferred,
                    "switch_when": rule.switch_when.model_dump(exclude_none=True),
                })
        return rows

    def _preferred_slot(self, rule: RoutingRule, rates: dict[tuple[str, str], tuple[int, int]]) -> str:
        """"secondary" when learning prefers it over the primary at no higher price, else "primary"."""
        if rule.secondary is None or not self.settings.routing.learn_from_outcomes:
            return "primary"
        primary = self.settings.agents[rule.primary].model
        secondary = self.settings.agents[rule.secondary].model
        mine, theirs = self._rate(rates, rule.task_type, primary), self._rate(rates, rule.task_type, secondary)
        cheaper = self._options.no_dearer(secondary, primary)
        if mine is None or theirs is None or not cheaper or secondary == primary or theirs[0] <= mine[0]:
            return "primary"
        return "secondary"


def _drops_text(drops: list[Drop]) -> str:
    """Each left-out alias once, with its reason, in the order met."""
    unique: dict[str, str] = {}
    for drop in drops:
        unique.setdefault(drop.alias, drop.text)
    return "; ".join(unique.values())
