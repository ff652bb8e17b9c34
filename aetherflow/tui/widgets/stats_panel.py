"""Spend and savings from the ledger: totals, task success, savings of the successful runs against the strongest
model alone, cache hits, per model and per day (with a small chart)."""

from __future__ import annotations

import datetime as dt

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Sparkline, Static

from aetherflow.ledger.stats import Stats, describe_savings
from aetherflow.tui.fmt import bar, money, percent
from aetherflow.tui.theme import themed

DAYS = 30
MODEL_ROWS = 6
RECENT_DAYS = 4
BAR_WIDTH = 24
EMPTY = "No model calls recorded in this repository yet."


def daily_series(by_day: dict[str, float], days: int = DAYS) -> tuple[list[float], str, str]:
    """Spend per day for the `days` days ending on the last day with spend (missing days are 0), and the range."""
    if not by_day:
        return [], "", ""
    last = max(dt.date.fromisoformat(day) for day in by_day)
    span = [last - dt.timedelta(days=offset) for offset in range(days - 1, -1, -1)]
    first_used = min(dt.date.fromisoformat(day) for day in by_day)
    span = [day for day in span if day >= first_used] or [last]
    return [by_day.get(day.isoformat(), 0.0) for day in span], span[0].isoformat(), span[-1].isoformat()


def summary_text(stats: Stats, baseline_name: str | None, accent: str, good: str) -> Text:
    """The totals block: spend, task success, baseline and savings, cache hits, pass and acceptance rates."""
    text = Text()
    text.append("Spent ", style="bold")
    text.append(money(stats.total_cost_usd), style=accent)
    text.append(f" over {stats.runs} run(s), {stats.calls} call(s)")
    if stats.cost_per_run_usd is not None:
        text.append(f", {money(stats.cost_per_run_usd)} per run")
    text.append(f"\nSucceeded {stats.runs_succeeded} of {stats.runs_finished} finished run(s)")
    text.append(f" ({percent(stats.success_rate)})\n")
    text.append_text(_savings_text(stats, baseline_name or "Strongest model", good))
    text.append(f"\nCache hits {stats.cache_hits} ({percent(stats.cache_hit_rate)})")
    text.append(f"  first-try pass {percent(stats.first_try_pass_rate)}")
    text.append(f"  accepted {percent(stats.acceptance_rate)}")
    return text


def _savings_text(stats: Stats, baseline_name: str, good: str) -> Text:
    """Savings of the successful runs only, in the words `aether stats` uses."""
    if stats.baseline_cost_usd is None:
        return Text("No price is known for the strongest model, so savings cannot be computed.", style="dim")
    if not stats.runs_succeeded or stats.savings_rate is None:
        return Text(f"Savings against {baseline_name}: {describe_savings(stats)}", style="dim")
    text = Text(f"{baseline_name} alone would have cost {money(stats.baseline_cost_usd)}  ")
    text.append(describe_savings(stats), style=good if stats.savings_rate >= 0 else "")
    return text


def models_text(by_model: dict[str, float], bar_style: str) -> Text:
    """Spend per model alias as horizontal bars, dearest first."""
    text = Text("Spend per model\n", style="bold")
    top = sorted(by_model.items(), key=lambda item: -item[1])[:MODEL_ROWS]
    most = max((cost for _, cost in top), default=0.0)
    width = max((len(alias) for alias, _ in top), default=0)
    for alias, cost in top:
        text.append(f"{alias.ljust(width)} ")
        text.append(bar(cost, most, BAR_WIDTH), style=bar_style)
        text.append(f" {money(cost)}\n")
    text.rstrip()
    return text


class StatsPanel(VerticalScroll):
    """Shows a Stats object; `show` redraws everything."""

    def compose(self) -> ComposeResult:
        yield Static(EMPTY, id="stats-summary")
        yield Static("", id="stats-models")
        yield Static("", id="stats-days-title")
        chart = Sparkline([], id="stats-days")
        chart.display = False  # until there are two days to compare
        yield chart
        yield Static("", id="stats-days-list")

    def show(self, stats: Stats, baseline_name: str | None = None) -> None:
        """Redraw from `stats` (computed off the UI thread by the session); `baseline_name` is the model savings
        are measured against."""
        summary = self.query_one("#stats-summary", Static)
        if not stats.calls and not stats.total_cost_usd:
            summary.update(EMPTY)
            return
        accent = themed(self.app, "bold $text-warning")
        summary.update(summary_text(stats, baseline_name, accent, themed(self.app, "bold $text-success")))
        self.query_one("#stats-models", Static).update(models_text(stats.by_model, themed(self.app, "$text-primary")))
        series, first, last = daily_series(stats.by_day)
        title = Text("Spend per day", style="bold")
        if series:
            title.append(f"  {first} … {last}, most {money(max(series))}", style="dim")
        self.query_one("#stats-days-title", Static).update(title)
        chart = self.query_one("#stats-days", Sparkline)
        chart.data = series
        chart.display = len(series) > 1  # one day is just the number below, not a chart
        recent = sorted(stats.by_day.items())[-RECENT_DAYS:]
        listing = "  ".join(f"{day[5:]} {money(cost)}" for day, cost in recent)
        self.query_one("#stats-days-list", Static).update(Text(listing, style="dim"))
