"""Builds what the TUI needs from Services: the pipeline, the index search and the ledger figures' baseline."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aetherflow.config.models import Price, Settings
from aetherflow.tui.contracts import PipelineLike
from aetherflow.tui.screens.session import RunKit, SessionSources

if TYPE_CHECKING:
    from aetherflow.services import Services

PLANNER_AGENT = "orchestrator"


def baseline_model(settings: Settings) -> tuple[str | None, Price | None]:
    """The model savings are measured against, as `aether stats` does: the orchestrator agent's model, with its
    configured or LiteLLM-bundled price (the lookup may import LiteLLM, so call this off the UI thread)."""
    from aetherflow.llm.pricing import resolve_price

    agent = settings.agents.get(PLANNER_AGENT)
    if agent is None:
        return None, None
    return agent.model, resolve_price(settings.models[agent.model])


def make_pipeline(services: Services) -> PipelineLike:
    """The orchestrator's pipeline over `services` (imported here: it pulls in the gateway and LiteLLM)."""
    from aetherflow.orchestrator.pipeline import Pipeline

    return Pipeline(services)


def run_kit(services: Services) -> RunKit:
    """A pipeline over fresh services (same settings and repository; own bus, ledger connection and gateway)."""
    from aetherflow.services import Services as ServicesType

    fresh = ServicesType(services.settings, services.repo_root, environ=services.environ)

    async def close() -> None:
        gateway = fresh.__dict__.get("gateway")  # a cached property: present only if the run built it
        if gateway is not None:
            await gateway.aclose()
        if fresh.__dict__.get("ledger") is not None:
            fresh.ledger.close()  # type: ignore[union-attr]

    return RunKit(pipeline=make_pipeline(fresh), bus=fresh.bus, close=close)


def session_sources(services: Services, pipeline: PipelineLike | None = None) -> SessionSources:
    """Everything the session screen reads and drives, from one Services object."""
    settings = services.settings
    return SessionSources(
        pipeline=pipeline or make_pipeline(services),
        new_run=lambda: run_kit(services),
        repo_root=services.repo_root,
        ledger=services.ledger,
        search=services.retriever,  # loads nothing until the first search
        baseline=lambda: baseline_model(settings),
        budget_usd=settings.budget.per_run_usd,
    )
