"""Rich styles from the active Textual theme, so colours written in Python read in light and dark themes alike.

CSS (app.tcss) can use `$text-success` directly; Rich `Text` in table cells and diff lines cannot, so widgets
pass style specs such as "bold $text-error" through `themed`.
"""

from __future__ import annotations

import re

from textual.app import App

_VARIABLE = re.compile(r"\$([a-z0-9-]+)")
LIGHT_THEME = "textual-light"
DARK_THEME = "textual-dark"


def themed(app: App[object], spec: str) -> str:
    """`spec` with each `$variable` replaced by the active theme's colour (unknown variables are dropped)."""
    variables = app.theme_variables or app.get_css_variables()

    def colour(match: re.Match[str]) -> str:
        value = variables.get(match.group(1), "")
        return value if value.startswith("#") else ""

    return " ".join(_VARIABLE.sub(colour, spec).split())


def is_dark(app: App[object]) -> bool:
    """True when the active theme is a dark one."""
    return app.current_theme.dark


def syntax_theme(app: App[object]) -> str:
    """The Pygments style for diffs and code under the active theme."""
    return "monokai" if is_dark(app) else "default"
