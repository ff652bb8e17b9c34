"""Small text formatters the screens share: money, token counts, durations, bars, state marks."""

from __future__ import annotations

import datetime as dt

# Theme variables (see theme.py): the `text-*` colours are the ones each theme makes readable on its background.
STATE_STYLE = {
    "pending": "dim",
    "running": "bold $text-primary",
    "retrying": "bold $text-warning",
    "done": "$text-success",
    "failed": "bold $text-error",
    "skipped": "$text-secondary",
}
STATE_MARK = {"pending": "·", "running": "▶", "retrying": "↻", "done": "✓", "failed": "✗", "skipped": "⤼"}
DECISION_MARK = {"accepted": "✓", "rejected": "✗", "partial": "◐"}
DECISION_STYLE = {"accepted": "$text-success", "rejected": "$text-error", "partial": "$text-warning"}
BLOCKS = " ▏▎▍▌▋▊▉█"


def money(value: float | None) -> str:
    """Dollars with enough digits for cheap calls: $0.0012, $1.23, $12.3."""
    if value is None:
        return "-"
    if value < 1:
        return f"${value:.4f}"
    return f"${value:.2f}" if value < 10 else f"${value:.1f}"


def tokens(count: int) -> str:
    """A token count in a few characters: 950, 12.3k, 4.1M."""
    if count < 1000:
        return str(count)
    if count < 1_000_000:
        return f"{count / 1000:.1f}k"
    return f"{count / 1_000_000:.1f}M"


def duration(seconds: float) -> str:
    """Elapsed time as 4.2s, 3m05s or 1h02m."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def when(ts: float) -> str:
    """A local timestamp as `2026-11-21 07:16`."""
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def bar(value: float, maximum: float, width: int) -> str:
    """A horizontal bar of `width` cells, filled in eighths, for `value` out of `maximum`."""
    if maximum <= 0 or width <= 0:
        return " " * max(width, 0)
    eighths = round(max(0.0, min(value / maximum, 1.0)) * width * 8)
    full, part = divmod(eighths, 8)
    text = "█" * full + (BLOCKS[part] if part else "")
    return text.ljust(width)


def percent(value: float | None) -> str:
    """A ratio (0-1) as a percentage, or '-' when unknown."""
    return "-" if value is None else f"{100 * value:.0f}%"


def short_id(run_id: str | None, width: int = 12) -> str:
    """A run id cut to a width that still identifies it (the CLI accepts prefixes)."""
    return "-" if not run_id else run_id[:width]


def clip(text: str, width: int) -> str:
    """`text` on one line, cut with an ellipsis to `width` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: max(width - 1, 0)] + "…"
