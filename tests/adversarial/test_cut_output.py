"""Item 10 (secrets in tool output): a long line cut for the model never shows part of a token, which the
redactor could no longer recognise as a secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from aetherflow.llm.redact import Redactor
from aetherflow.orchestrator.repo_grep import MAX_LINE_CHARS, grep_files, shorten_line

TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


@pytest.mark.parametrize("offset", [-30, -20, -10, -4, -1])
def test_a_token_straddling_the_cut_is_dropped_whole(offset: int) -> None:
    """Wherever the cut falls inside the token, none of it is shown, and the line says it was cut."""
    line = "x" * 10 + " " + "y" * (MAX_LINE_CHARS - 11 + offset) + " " + TOKEN + " tail"

    shown = shorten_line(line)

    assert shown.endswith(" [...]") and len(shown) <= MAX_LINE_CHARS + len(" [...]")
    assert TOKEN[:4] not in shown
    assert "x" * 10 in shown


def test_grep_output_of_a_long_line_gives_the_redactor_nothing_partial(demo_repo: Path) -> None:
    """Through the grep tool: the match line is cut before the token, so no fragment of it leaves."""
    (demo_repo / "config.py").write_text("SETTINGS = " + "a" * 280 + f" {TOKEN}\n")  # the token spans the cut

    outcome = grep_files(demo_repo, "SETTINGS", path_glob="config.py", max_results=50)
    redacted, _ = Redactor(key=b"k" * 32).redact_text("\n".join(outcome.lines))

    assert outcome.lines and not any(TOKEN[:6] in line for line in outcome.lines)
    assert TOKEN[:6] not in redacted
