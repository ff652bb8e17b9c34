"""The run's header: status, elapsed time, spend against the budget, tokens, cache hits and spend per agent."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from aetherflow.runboard import BoardSnapshot
from aetherflow.tui.fmt import bar, duration, money, tokens
from aetherflow.tui.theme import themed

STATUS_STYLE = {
    "planning": "bold $text-primary",
    "running": "bold $text-primary",
    "validating": "bold $text-primary",
    "review": "bold $text-success",
    "applied": "bold $text-success",
    "discarded": "bold $text-warning",
    "failed": "bold $text-error",
    "cancelled": "bold $text-warning",
}
BUDGET_BAR = 10


def meter_text(snap: BoardSnapshot, elapsed_s: float, status: str, style: dict[str, str]) -> Text:
    """The two header lines as Rich text; `style` maps a role ("status", "spend", "over") to a Rich style.

    Line one: status, elapsed, spend against the budget, cache hits. Line two: tokens, then spend per agent.
    """
    text = Text()
    text.append(f"{status}", style=style["status"])
    text.append(f"  {duration(elapsed_s)}  ")
    text.append(money(snap.cost_usd), style=style["spend"])
    if snap.budget_usd:
        share = snap.cost_usd / snap.budget_usd
        text.append(f" of ${snap.budget_usd:.2f} ")
        text.append(bar(snap.cost_usd, snap.budget_usd, BUDGET_BAR), style=style["over" if share > 0.8 else "spend"])
        text.append(f" {100 * share:.0f}%")
    text.append(f"  cache hits {snap.cache_hits}")
    text.append(f"\ntokens {tokens(snap.tokens_in)} in / {tokens(snap.tokens_out)} out", style="dim")
    agents = sorted(((a, c) for a, c in snap.cost_by_agent.items() if c > 0), key=lambda item: -item[1])
    if agents:
        text.append("  " + "  ".join(f"{agent} {money(cost)}" for agent, cost in agents), style="dim")
    return text


class CostMeter(Static):
    """Redrawn from each board snapshot; only touches the screen when the text changes."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__("", **kwargs)  # type: ignore[arg-type]
        self._last: Text | None = None

    def show(self, snap: BoardSnapshot, elapsed_s: float, status: str) -> None:
        """Render `snap` with `status` (the screen may know better than the board, e.g. 'cancelled')."""
        style = {
            "status": themed(self.app, STATUS_STYLE.get(status, "bold")),
            "spend": themed(self.app, "bold $text-warning"),
            "over": themed(self.app, "bold $text-error"),
        }
        text = meter_text(snap, elapsed_s, status, style)
        if text != self._last:  # Text equality covers the styled spans too, so a theme switch redraws
            self._last = text
            self.update(text)
