"""The router against the shipped decision matrix: rules, switch conditions, availability, budget, learning,
vision, planner hints and escalation."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest

from aetherflow.config.loader import load_settings
from aetherflow.config.models import Price, Settings
from aetherflow.errors import BudgetExceededError, ModelUnavailableError
from aetherflow.llm.pricing import resolve_price, worst_case_usd
from aetherflow.orchestrator.plan import TaskSpec
from aetherflow.orchestrator.router import RouteDecision, Router

ALL = ("sonnet", "deepseek", "codestral", "gemini-flash", "groq-llama", "mistral-small", "local")


class FakeStats:
    """Recorded outcomes, as the ledger would report them."""

    def __init__(self, rates: dict[tuple[str, str], tuple[int, int]]) -> None:
        self.rates = rates

    def success_rates(self) -> dict[tuple[str, str], tuple[int, int]]:
        return dict(self.rates)


def settings(**flags: Any) -> Settings:
    return load_settings(repo_root=None, flags=flags, environ={})


def availability(up: Iterable[str]) -> Callable[[str], tuple[bool, str]]:
    up = set(up)
    return lambda alias: (True, "ok") if alias in up else (False, f"key for {alias} missing")


def router(up: Iterable[str] = ALL, stats: FakeStats | None = None, config: Settings | None = None) -> Router:
    config = config or settings()

    def price_of(alias: str) -> Price | None:
        return resolve_price(config.models[alias])

    return Router(config, availability(up), price_of, stats)


def task(type_: str = "module_generation", **fields: Any) -> TaskSpec:
    return TaskSpec(id=fields.pop("id", "t1"), type=type_, description="do it", **fields)


@pytest.mark.parametrize(
    ("type_", "fields", "agent", "alias"),
    [
        ("module_generation", {"complexity": 0.5}, "coder", "deepseek"),
        ("module_generation", {"complexity": 0.9}, "reasoner", "sonnet"),
        ("local_refactor", {"estimated_tokens": 400}, "editor", "codestral"),
        ("local_refactor", {"estimated_tokens": 900}, "coder", "deepseek"),
        ("analysis", {"complexity": 0.3}, "analyst", "gemini-flash"),
        ("analysis", {"complexity": 0.8}, "reasoner", "sonnet"),
        ("brainstorm", {"complexity": 0.5}, "prototyper", "groq-llama"),
        ("brainstorm", {"complexity": 0.85}, "reasoner", "sonnet"),
        ("validation", {"complexity": 0.2}, "verifier", "mistral-small"),
        ("validation", {"complexity": 0.6}, "editor", "codestral"),
        ("debugging", {"cost_sensitivity": 0.5}, "reasoner", "sonnet"),
        ("debugging", {"cost_sensitivity": 0.9}, "coder", "deepseek"),
        ("documentation", {"estimated_tokens": 1000}, "reasoner", "sonnet"),
        ("documentation", {"estimated_tokens": 40000}, "analyst", "gemini-flash"),
        ("documentation", {"cost_sensitivity": 0.9}, "analyst", "gemini-flash"),
        ("review", {"estimated_tokens": 1000}, "verifier", "mistral-small"),
        ("review", {"estimated_tokens": 30000}, "editor", "codestral"),
    ],
)
def test_every_default_rule_and_switch_condition(type_: str, fields: dict, agent: str, alias: str) -> None:
    decision = router().route(task(type_, **fields), remaining_budget_usd=None)
    assert (decision.agent, decision.alias) == (agent, alias)
    config = settings().agents[agent]
    assert decision.chain == [config.model, *config.fallbacks]


def test_reason_names_the_rule_choice_and_the_condition() -> None:
    decision = router().route(task("validation", complexity=0.2), None)
    assert decision.reason == "validation -> verifier (mistral-small): cheapest fitting; complexity 0.2 < 0.5"
    switched = router().route(task("local_refactor", estimated_tokens=900), None)
    assert switched.reason == "local_refactor -> coder (deepseek): tokens 900 > 600"


def test_estimated_cost_is_the_worst_case_of_the_chosen_model() -> None:
    config = settings()
    decision = router(config=config).route(task("validation", estimated_tokens=3000), None)
    price = config.models["mistral-small"].price
    assert price is not None
    assert decision.estimated_cost_usd == pytest.approx(worst_case_usd(price, 3000, 2048))


def test_speed_priority_and_vision_switch_conditions() -> None:
    rules = [
        {"task_type": "quick", "primary": "coder", "secondary": "prototyper",
         "switch_when": {"speed_priority_over": 0.7}},
        {"task_type": "look", "primary": "coder", "secondary": "analyst", "switch_when": {"needs_vision": True}},
    ]
    config = settings(routing={"default_task_type": "quick", "rules": rules})
    r = router(config=config)
    assert r.route(task("quick", speed_priority=0.9), None).agent == "prototyper"
    assert r.route(task("quick", speed_priority=0.7), None).agent == "coder"
    looking = r.route(task("look", needs_vision=True), None)
    assert (looking.agent, looking.alias) == ("analyst", "gemini-flash")
    assert "needs vision" in looking.reason
    assert r.route(task("look"), None).agent == "coder"


def test_unknown_type_uses_the_default_rule_and_says_so() -> None:
    decision = router().route(task("poetry", complexity=0.1), None)
    assert decision.agent == "coder"
    assert decision.reason.startswith("unknown type 'poetry', routed as module_generation; module_generation -> coder")


def test_unavailable_models_are_skipped_with_their_reason() -> None:
    up = set(ALL) - {"deepseek"}
    decision = router(up).route(task(complexity=0.2), None)
    assert (decision.agent, decision.alias, decision.chain) == ("coder", "sonnet", ["sonnet"])
    assert "deepseek skipped: key for deepseek missing" in decision.reason


def test_whole_agent_unavailable_falls_to_the_rules_other_agent() -> None:
    up = set(ALL) - {"codestral", "deepseek"}
    decision = router(up).route(task("local_refactor", estimated_tokens=100), None)
    # editor (codestral, deepseek) cannot serve; the rule's other agent, coder, runs on its fallback sonnet.
    assert (decision.agent, decision.alias) == ("coder", "sonnet")
    assert "editor cannot serve it" in decision.reason


def test_no_remote_model_uses_the_local_model() -> None:
    decision = router(["local"]).route(task("validation"), None)
    assert (decision.agent, decision.alias, decision.chain) == ("verifier", "local", ["local"])
    assert "using the local model" in decision.reason


def test_nothing_available_names_every_reason() -> None:
    with pytest.raises(ModelUnavailableError) as caught:
        router([]).route(task("validation"), None)
    message = str(caught.value)
    assert "task 't1'" in message and "mistral-small: key for mistral-small missing" in message
    assert "local: key for local missing" in message


def test_budget_filter_drops_models_too_dear_for_what_is_left() -> None:
    config = settings()
    sonnet = config.models["sonnet"].price
    assert sonnet is not None
    sonnet_cost = worst_case_usd(sonnet, 2000, 8192)
    decision = router(config=config).route(task(complexity=0.9), remaining_budget_usd=sonnet_cost - 0.001)
    assert (decision.agent, decision.alias) == ("reasoner", "deepseek")
    assert "sonnet skipped: could cost up to" in decision.reason
    assert decision.estimated_cost_usd is not None and decision.estimated_cost_usd < sonnet_cost - 0.001
    fits = router(config=config).route(task(complexity=0.9), remaining_budget_usd=sonnet_cost)
    assert fits.alias == "sonnet"


def test_budget_too_small_for_every_model_raises_budget_exceeded() -> None:
    with pytest.raises(BudgetExceededError) as caught:
        router().route(task(complexity=0.2), remaining_budget_usd=0.0001)
    assert "fits the remaining budget" in caught.value.message
    assert "--budget" in (caught.value.hint or "")


def test_unknown_price_is_dropped_only_under_a_budget() -> None:
    config = settings()
    r = Router(config, availability(ALL), lambda alias: None)
    assert r.route(task(complexity=0.2), None).estimated_cost_usd is None
    with pytest.raises(BudgetExceededError, match="price unknown"):
        r.route(task(complexity=0.2), 1.0)


def test_learning_prefers_the_better_success_rate_at_lower_cost() -> None:
    stats = FakeStats({("debugging", "sonnet"): (5, 10), ("debugging", "deepseek"): (9, 10)})
    decision = router(stats=stats).route(task("debugging"), None)
    assert (decision.agent, decision.alias) == ("coder", "deepseek")
    assert decision.reason == (
        "debugging -> coder (deepseek): learned: success 90% of 10 on deepseek vs 50% of 10 on sonnet "
        "at no higher cost"
    )


def test_learning_needs_enough_samples_for_both_and_can_be_off() -> None:
    few = FakeStats({("debugging", "sonnet"): (1, 4), ("debugging", "deepseek"): (9, 10)})
    assert router(stats=few).route(task("debugging"), None).agent == "reasoner"
    many = FakeStats({("debugging", "sonnet"): (5, 10), ("debugging", "deepseek"): (9, 10)})
    off = settings(routing={"learn_from_outcomes": False})
    assert router(stats=many, config=off).route(task("debugging"), None).agent == "reasoner"


def test_learning_never_moves_to_a_dearer_model() -> None:
    stats = FakeStats({("module_generation", "deepseek"): (2, 10), ("module_generation", "sonnet"): (10, 10)})
    assert router(stats=stats).route(task(complexity=0.2), None).agent == "coder"


def test_vision_picks_a_model_that_can_see() -> None:
    decision = router().route(task(complexity=0.2, needs_vision=True), None)
    # coder's deepseek cannot see images; its fallback sonnet can.
    assert (decision.agent, decision.alias, decision.chain) == ("coder", "sonnet", ["sonnet"])
    assert "deepseek skipped: cannot see images" in decision.reason


def test_vision_without_a_vision_model_is_a_clear_error() -> None:
    up = set(ALL) - {"sonnet", "gemini-flash"}
    with pytest.raises(ModelUnavailableError) as caught:
        router(up).route(task(complexity=0.2, needs_vision=True), None)
    assert "needs to see images" in caught.value.message
    assert "gemini-flash, sonnet" in (caught.value.hint or "") and "--image" in (caught.value.hint or "")


def test_planner_hint_is_honoured_when_it_fits() -> None:
    decision = router().route(task(complexity=0.2, agent="analyst"), None)
    assert (decision.agent, decision.alias) == ("analyst", "gemini-flash")
    assert decision.reason == "module_generation -> analyst (gemini-flash): planner's choice"


def test_planner_hint_that_cannot_serve_is_overruled_and_said() -> None:
    up = set(ALL) - {"gemini-flash", "sonnet"}
    decision = router(up).route(task(complexity=0.2, agent="analyst"), None)
    assert decision.agent == "coder"
    assert decision.reason.startswith("planner's choice analyst cannot serve it (gemini-flash: key")


def test_escalation_goes_to_the_secondary_then_untried_fallbacks_then_none() -> None:
    r = router()
    spec = task(complexity=0.2)
    first = r.route(spec, None)
    assert (first.agent, first.alias) == ("coder", "deepseek")
    second = r.escalate(first, spec)
    assert second is not None and (second.agent, second.alias) == ("reasoner", "sonnet")
    assert second.tried == ["deepseek"] and "escalated after coder (deepseek) failed" in second.reason
    third = r.escalate(second, spec)
    # reasoner's chain is sonnet, deepseek, gemini-flash: deepseek was tried already.
    assert third is not None
    assert (third.agent, third.alias, third.chain) == ("reasoner", "gemini-flash", ["gemini-flash"])
    assert r.escalate(third, spec) is None


def test_escalation_from_the_secondary_walks_its_chain() -> None:
    r = router()
    spec = task("validation", complexity=0.9)
    first = r.route(spec, None)
    assert (first.agent, first.alias, first.chain) == ("editor", "codestral", ["codestral", "deepseek"])
    nxt = r.escalate(first, spec)
    assert nxt is not None and (nxt.agent, nxt.alias) == ("editor", "deepseek")
    assert r.escalate(nxt, spec) is None


def test_escalation_respects_budget_and_availability() -> None:
    r = router(set(ALL) - {"gemini-flash"})
    spec = task(complexity=0.2)
    first = r.route(spec, None)
    # sonnet's worst case (~$0.13) is over $0.05, deepseek was tried, gemini-flash is down: nothing is left.
    assert r.escalate(first, spec, remaining_budget_usd=0.05) is None
    second = r.escalate(first, spec)
    assert second is not None and second.alias == "sonnet"
    assert r.escalate(second, spec) is None


def test_table_lists_agents_models_samples_and_the_preferred_one() -> None:
    stats = FakeStats({("debugging", "sonnet"): (5, 10), ("debugging", "deepseek"): (9, 10),
                       ("validation", "mistral-small"): (3, 4)})
    rows = {(row["task_type"], row["agent"]): row for row in router(stats=stats).table()}
    assert len(rows) == 16
    debugging_coder = rows[("debugging", "coder")]
    assert debugging_coder["alias"] == "deepseek" and debugging_coder["samples"] == 10
    assert debugging_coder["success_rate"] == pytest.approx(0.9) and debugging_coder["preferred"] is True
    assert rows[("debugging", "reasoner")]["preferred"] is False
    verifier = rows[("validation", "verifier")]
    assert (verifier["successes"], verifier["samples"], verifier["preferred"]) == (3, 4, True)
    assert rows[("review", "editor")]["success_rate"] is None
    assert rows[("review", "editor")]["switch_when"] == {"tokens_over": 20000}


def test_route_decision_round_trips_as_json() -> None:
    decision = router().route(task("review"), None)
    assert RouteDecision.model_validate_json(decision.model_dump_json()) == decision
