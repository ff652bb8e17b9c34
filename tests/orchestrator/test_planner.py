"""The planner through the real Gateway against the scripted server: a valid plan, one repair round with the
exact problems, a clear PlanError after that; and the plan tree `aether plan` prints."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rich.console import Console

from aetherflow.cli.plan_view import render_plan_tree
from aetherflow.errors import ConfigError, PlanError
from aetherflow.events import EventBus
from aetherflow.llm.gateway import Gateway
from aetherflow.orchestrator.plan import Plan
from aetherflow.orchestrator.planner import PlanContext, make_plan
from aetherflow.orchestrator.router import RouteDecision
from aetherflow.testing.server import Reply, ScriptedServer
from aetherflow.testing.settings import scripted_environ, scripted_settings

CONTEXT = PlanContext(
    repo_map="app/auth.py: login(), logout()\napp/server.py: routes",
    chunks=["# app/auth.py:1\ndef login(user, password): ..."],
    past_solutions=["Added rate limiting to login (run 41)."],
)


def task(id_: str, deps: list[str] | None = None, **fields: Any) -> dict[str, Any]:
    return {"id": id_, "type": fields.pop("type", "module_generation"), "description": f"do {id_}",
            "depends_on": deps or [], **fields}


VALID = {"summary": "JWT auth", "tasks": [
    task("tokens", acceptance_criteria=["tokens.py issues and verifies JWTs"]),
    task("middleware", ["tokens"], type="local_refactor", agent="editor"),
    task("check", ["middleware"], type="validation"),
]}
CYCLE = {"summary": "JWT auth", "tasks": [task("a", ["b"]), task("b", ["a"])]}


def gateway(server: ScriptedServer, **overrides: Any) -> Gateway:
    return Gateway(scripted_settings(server, **overrides), EventBus(), environ=scripted_environ())


async def test_a_valid_plan_comes_back_parsed(scripted_server: ScriptedServer) -> None:
    scripted_server.enqueue(Reply(json=VALID))
    gw = gateway(scripted_server)

    plan = await make_plan(gw, gw.settings, "Refactor auth to JWT", CONTEXT, run_id="r1")

    assert plan == Plan.model_validate(VALID)
    (request,) = scripted_server.completion_requests()
    body = request.body
    assert body["model"] == "strong"  # the orchestrator agent's model in the scripted settings
    assert body["response_format"]["json_schema"]["name"] == "Plan"
    # The schema only admits the routing table's task types, so a model cannot invent one.
    task_type = body["response_format"]["json_schema"]["schema"]["$defs"]["TaskSpec"]["properties"]["type"]
    assert task_type["enum"] == [rule.task_type for rule in gw.settings.routing.rules]
    system, context, ask = (m["content"] for m in body["messages"])
    assert "You are the orchestrator of AetherFlow" in str(system)
    assert "# Repository map" in str(context) and "def login(user, password)" in str(context)
    assert "Added rate limiting to login" in str(context)
    assert "- module_generation: Generate a whole module or a major refactoring." in ask
    assert "- verifier: Checks syntax and reviews small diffs cheaply." in ask
    assert "- orchestrator:" not in ask
    assert ask.rstrip().endswith("Request:\nRefactor auth to JWT")
    assert "needs_vision" not in ask
    await gw.aclose()


async def test_the_cacheable_prefix_is_marked_for_prompt_caching(scripted_server: ScriptedServer) -> None:
    scripted_server.enqueue(Reply(json=VALID))
    capabilities = ["tools", "json_schema", "streaming", "prompt_cache"]
    gw = gateway(scripted_server, models={"strong": {"capabilities": capabilities}})

    await make_plan(gw, gw.settings, "Refactor auth", CONTEXT.model_copy(update={"images": 2}))

    messages = scripted_server.completion_requests()[0].body["messages"]
    marked = [any(isinstance(p, dict) and "cache_control" in p for p in m["content"]) if isinstance(m["content"], list)
              else False for m in messages]
    assert marked == [True, True, False]
    assert "attached 2 image(s); set needs_vision = true" in messages[2]["content"]
    await gw.aclose()


async def test_a_plan_with_a_cycle_gets_one_repair_round_with_the_exact_problem(
    scripted_server: ScriptedServer,
) -> None:
    scripted_server.enqueue(Reply(json=CYCLE), Reply(json=VALID))
    gw = gateway(scripted_server)

    plan = await make_plan(gw, gw.settings, "Refactor auth to JWT", CONTEXT)

    assert [t.id for t in plan.tasks] == ["tokens", "middleware", "check"]
    first, repair = scripted_server.completion_requests()
    assistant, correction = repair.body["messages"][-2:]
    assert assistant["role"] == "assistant" and json.loads(assistant["content"])["tasks"][0]["depends_on"] == ["b"]
    assert correction["role"] == "user"
    assert "- dependencies form a cycle: a -> b -> a" in correction["content"]
    assert repair.body["messages"][:3] == first.body["messages"]
    await gw.aclose()


async def test_still_invalid_after_repair_is_a_plan_error_naming_the_problems(scripted_server: ScriptedServer) -> None:
    unknown = {"summary": "s", "tasks": [task("a"), task("a"), task("b", ["ghost"], agent="wizard")]}
    scripted_server.enqueue(Reply(json=CYCLE), Reply(json=unknown))
    gw = gateway(scripted_server)

    with pytest.raises(PlanError) as caught:
        await make_plan(gw, gw.settings, "Refactor auth", CONTEXT)

    message = caught.value.message
    assert "still invalid after a repair round" in message
    assert "task id 'a' is used more than once" in message
    assert "task 'b' depends on 'ghost', which is not a task of this plan" in message
    assert "wizard" not in message  # an agent hint is the router's business: it ignores one it does not know
    assert "aether agents edit orchestrator" in (caught.value.hint or "")
    assert scripted_server.pending == 0 and len(scripted_server.completion_requests()) == 2
    await gw.aclose()


async def test_a_small_planner_s_half_valid_plan_is_read_the_one_way_it_can_be(scripted_server: ScriptedServer) -> None:
    loose = {"summary": "s", "tasks": [{
        "id": "a", "type": "local_refactor", "description": "rename x", "expected_output": "edits",
        "depends_on": "", "context_files": "app/x.py", "complexity": "high", "agent": "wizard",
        "fallback_strategy": ["try harder", "next_agent"], "input_format": "python",
    }]}
    scripted_server.enqueue(Reply(json=loose))
    gw = gateway(scripted_server)

    plan = await make_plan(gw, gw.settings, "Rename x", CONTEXT)

    [spec] = plan.tasks
    assert spec.expected_output.format == "edits" and spec.depends_on == [] and spec.context_files == ["app/x.py"]
    assert spec.complexity == 0.5 and spec.fallback_strategy == ["next_agent"] and spec.input_format == "code"
    assert len(scripted_server.completion_requests()) == 1  # no repair round was needed
    await gw.aclose()


async def test_disabled_orchestrator_is_a_config_error(scripted_server: ScriptedServer) -> None:
    gw = gateway(scripted_server, agents={"orchestrator": {"enabled": False}})
    with pytest.raises(ConfigError, match="'orchestrator' agent, which is missing or disabled"):
        await make_plan(gw, gw.settings, "x", CONTEXT)
    assert scripted_server.completion_requests() == []
    await gw.aclose()


def test_plan_tree_shows_type_agent_model_deps_criteria_estimate_and_reason() -> None:
    plan = Plan.model_validate(VALID)
    routes = {
        "tokens": RouteDecision(task_id="tokens", agent="coder", alias="deepseek", chain=["deepseek", "sonnet"],
                                reason="module_generation -> coder (deepseek): cheapest fitting",
                                estimated_cost_usd=0.0041),
        "middleware": RouteDecision(task_id="middleware", agent="editor", alias="codestral", chain=["codestral"],
                                    reason="local_refactor -> editor (codestral): planner's choice",
                                    estimated_cost_usd=0.0043),
    }
    console = Console(record=True, width=120, color_system=None)
    console.print(render_plan_tree(plan, routes))
    text = console.export_text()

    assert "Plan: JWT auth  (3 subtasks, cost partly unknown)" in text
    assert "tokens module_generation → coder (deepseek)" in text
    assert "middleware local_refactor → editor (codestral)" in text
    assert "check validation → not routed" in text
    assert "after: middleware" in text and "tokens.py issues and verifies JWTs" in text
    assert "~2,000 tokens in, up to $0.0041" in text
    assert "route: local_refactor -> editor (codestral): planner's choice" in text
    assert "fallbacks: sonnet" in text
    headings = ("tokens module_generation", "middleware local_refactor", "check validation")
    positions = [text.index(heading) for heading in headings]
    assert positions == sorted(positions)
