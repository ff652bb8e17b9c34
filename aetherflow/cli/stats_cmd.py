"""`aether stats`: what the ledger says about spend, task success, savings, caching, validation and review;
`--routing` shows the table the router uses (rules, each agent's model, recorded success rates, which slot it
prefers)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from aetherflow.cli import app
from aetherflow.cli._output import console, print_json

if TYPE_CHECKING:
    from aetherflow.ledger.stats import Stats
    from aetherflow.orchestrator.pipeline import Pipeline


@app.command()
def stats(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    routing: Annotated[bool, typer.Option("--routing", help="Show the routing table with recorded outcomes.")] = False,
) -> None:
    """Spend, task success, savings against the orchestrator model alone, cache hits, pass and acceptance rates.

    Savings count only the runs that succeeded (applied, not undone, checks passed or none configured); spend is
    shown by agent, model and day, with the cost per run; --routing shows the router's table instead. With
    --json, rates are fractions (0..1) and dollars are rounded to a millionth.
    """
    from aetherflow.orchestrator.pipeline import Pipeline
    from aetherflow.services import build_services

    pipeline = Pipeline(build_services())
    if routing:
        rows = pipeline.router().table()
        if as_json:
            print_json(rows)
        else:
            console().print(_routing_table(rows))
        return
    figures, alias = _compute(pipeline)
    if as_json:
        print_json({**figures.model_dump(mode="json"), "baseline_alias": alias})
        return
    _print_stats(figures, alias)


def _compute(pipeline: Pipeline) -> tuple[Stats, str]:
    from aetherflow.ledger.stats import compute_stats
    from aetherflow.llm.pricing import resolve_price

    settings, ledger = pipeline.services.settings, pipeline.services.ledger
    assert ledger is not None, "a Pipeline always has a repository, hence a ledger"
    alias = settings.agents["orchestrator"].model
    model = settings.models.get(alias)
    return compute_stats(ledger, resolve_price(model) if model is not None else None), alias


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:.4f}"


def _success(s: Stats) -> str:
    """Runs whose change was applied and whose checks passed, out of the finished ones: "2 of 3 finished runs
    (67%)"."""
    if not s.runs_finished:
        return "no finished run yet"
    runs = "run" if s.runs_finished == 1 else "runs"
    return f"{s.runs_succeeded} of {s.runs_finished} finished {runs} ({_pct(s.success_rate)})"


def _print_stats(s: Stats, alias: str) -> None:
    from aetherflow.ledger.stats import describe_savings

    con = console()
    if not s.runs and not s.calls:
        con.print('No calls recorded yet. Run `aether run "..."` or `aether ask "..."` first.')
        return
    summary = Table(show_header=False, show_edge=False, pad_edge=False)
    summary.add_column("figure")
    summary.add_column("value", justify="right")
    for name, value in [
        ("total spend", f"${s.total_cost_usd:.4f}"),
        ("task success", _success(s)),
        ("spend of successful runs", f"${s.successful_cost_usd:.4f}"),
        (f"same calls on {alias} alone", _usd(s.baseline_cost_usd)),
        ("savings", describe_savings(s)),
        ("runs", str(s.runs)),
        ("cost per run", _usd(s.cost_per_run_usd)),
        ("calls", str(s.calls)),
        ("cache hit rate", f"{_pct(s.cache_hit_rate)} ({s.cache_hits} hits)"),
        ("first-try validation pass rate", _pct(s.first_try_pass_rate)),
        ("acceptance rate", _pct(s.acceptance_rate)),
        ("time to first token p50 / p95", f"{_secs(s.ttft_p50_s)} / {_secs(s.ttft_p95_s)}"),
    ]:
        summary.add_row(name, value)
    con.print(summary)
    for title, spend in (("Spend by agent", s.by_agent), ("Spend by model", s.by_model), ("Spend by day", s.by_day)):
        con.print(_spend_table(title, spend))


def _spend_table(title: str, spend: dict[str, float]) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("")
    table.add_column("USD", justify="right")
    for key, usd in spend.items():
        table.add_row(escape(key), f"${usd:.4f}")
    return table


def _routing_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="Routing table (rules from settings, outcomes from the ledger)", title_justify="left",
                  show_edge=False, pad_edge=False)
    for name in ("task type", "slot", "agent", "model", "samples", "success", "preferred", "switch when"):
        table.add_column(name, justify="right" if name in ("samples", "success") else "left")
    for row in rows:
        switch = ", ".join(f"{k}={v}" for k, v in row["switch_when"].items()) or "-"
        table.add_row(row["task_type"], row["slot"], row["agent"], row["alias"], str(row["samples"]),
                      _pct(row["success_rate"]), "✓" if row["preferred"] else "", escape(switch))
    return table
