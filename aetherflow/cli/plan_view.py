"""How `aether plan` shows a plan: a rich tree of subtasks with their routes, in the order they can run."""

from __future__ import annotations

from collections.abc import Mapping

from rich.markup import escape
from rich.tree import Tree

from aetherflow.orchestrator.plan import Plan, TaskSpec, layers
from aetherflow.orchestrator.router import RouteDecision
from aetherflow.workspace.invisible import reveal_invisible


def _shown(text: str) -> str:
    # Plan text is the model's: markup escaped, and invisible or terminal-controlling characters made visible.
    return escape(reveal_invisible(text))


def render_plan_tree(plan: Plan, routes: Mapping[str, RouteDecision]) -> Tree:
    """A tree: the plan's summary, then one branch per subtask (in dependency order) with its type, agent, model,
    dependencies, acceptance criteria, estimated tokens and cost, and the routing reason."""
    tree = Tree(f"[bold]Plan[/]: {_shown(plan.summary)}  [dim]({len(plan.tasks)} subtasks, {_total(plan, routes)})[/]")
    for layer in layers(plan):
        for task_id in layer:
            _add_task(tree, plan.task(task_id), routes.get(task_id))
    return tree


def _add_task(tree: Tree, task: TaskSpec, route: RouteDecision | None) -> None:
    where = f"{escape(route.agent)} ({escape(route.alias)})" if route else "[yellow]not routed[/]"
    branch = tree.add(f"[bold cyan]{_shown(task.id)}[/] [magenta]{_shown(task.type)}[/] → {where}")
    branch.add(_shown(task.description))
    if task.depends_on:
        branch.add("[dim]after:[/] " + ", ".join(_shown(d) for d in task.depends_on))
    estimate = f"~{task.estimated_tokens:,} tokens in"
    if route is not None:
        estimate += f", up to {_usd(route.estimated_cost_usd)}"
    branch.add(f"[dim]estimate:[/] {estimate}")
    if task.acceptance_criteria:
        criteria = branch.add("[dim]acceptance:[/]")
        for criterion in task.acceptance_criteria:
            criteria.add(_shown(criterion))
    if route is not None:
        branch.add(f"[dim]route:[/] {escape(route.reason)}")
        if len(route.chain) > 1:
            branch.add("[dim]fallbacks:[/] " + " → ".join(escape(a) for a in route.chain[1:]))


def _usd(amount: float | None) -> str:
    return "price unknown" if amount is None else f"${amount:.4f}"


def _total(plan: Plan, routes: Mapping[str, RouteDecision]) -> str:
    costs = [routes[t.id].estimated_cost_usd if t.id in routes else None for t in plan.tasks]
    known = [c for c in costs if c is not None]
    if not known:
        return "cost unknown"
    if len(known) < len(costs):
        return "cost partly unknown"
    return f"worst case {_usd(sum(known))}"
