"""Wiring the session from Services: the baseline model, the search, the budget, one fresh kit per run."""

from __future__ import annotations

from pathlib import Path

from aetherflow.config.models import Price
from aetherflow.orchestrator.pipeline import Pipeline
from aetherflow.services import Services
from aetherflow.testing.settings import scripted_environ, scripted_settings
from aetherflow.tui.wiring import baseline_model, run_kit, session_sources

BASE_URL = "http://127.0.0.1:9"  # never contacted: nothing here calls a model


def services(repo: Path) -> Services:
    settings = scripted_settings(BASE_URL, budget={"per_run_usd": 0.25})
    return Services(settings, repo, environ=scripted_environ())


def test_the_baseline_is_the_orchestrator_model_at_its_price(repo: Path) -> None:
    assert baseline_model(services(repo).settings) == ("strong", Price(input=3.0, output=15.0))


async def test_session_sources_share_the_ledger_and_build_a_fresh_kit_per_run(repo: Path) -> None:
    svc = services(repo)
    sources = session_sources(svc)
    assert isinstance(sources.pipeline, Pipeline)
    assert sources.ledger is svc.ledger and sources.search is svc.retriever and sources.repo_root == repo
    assert sources.budget_usd == 0.25 and sources.baseline() == ("strong", Price(input=3.0, output=15.0))
    first, second = run_kit(svc), run_kit(svc)
    assert first.bus is not second.bus and first.bus is not svc.bus  # each run: its own bus, gateway and budget
    assert isinstance(first.pipeline, Pipeline)
    await first.close()
    await second.close()
