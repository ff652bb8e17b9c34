"""Item 11 (injected text shown to the user): model-written plan and progress text cannot restyle, reorder or
erase what the terminal shows; it is printed literally, with hidden characters as visible markers."""

from __future__ import annotations

from rich.console import Console

from aetherflow.cli.plan_view import render_plan_tree
from aetherflow.cli.run_view import render_board
from aetherflow.orchestrator.plan import Plan, TaskSpec
from aetherflow.runboard import BoardSnapshot, TaskRow

HOSTILE = "add tests \u202eredli\u202c [bold red]approved[/] \x1b[2K\x1b]52;c;ZXZpbA==\x07 \u200bdone"


def _rendered(renderable: object) -> str:
    console = Console(record=True, width=200, color_system=None)
    console.print(renderable)
    return console.export_text()


def _assert_literal_and_revealed(text: str) -> None:
    assert "<U+202E>" in text and "<U+200B>" in text and "<U+001B>" in text
    assert "\u202e" not in text and "\x1b" not in text and "\u200b" not in text
    assert "[bold red]approved[/]" in text  # shown as written, not taken for markup


def test_plan_tree_shows_model_text_literally_with_hidden_characters_revealed() -> None:
    """`aether plan`: the summary, descriptions and acceptance criteria."""
    plan = Plan(summary=HOSTILE, tasks=[TaskSpec(id="a", type="local_refactor", description=HOSTILE,
                                                 acceptance_criteria=[HOSTILE])])

    _assert_literal_and_revealed(_rendered(render_plan_tree(plan, {})))


def test_live_board_shows_model_text_literally_with_hidden_characters_revealed() -> None:
    """The live progress table of `aether run`: subtask detail and errors."""
    snap = BoardSnapshot(run_id="r", request="x", status="running", started_at=None, elapsed_s=1.0, budget_usd=None,
                         tasks=[TaskRow(task_id="a", state="failed", reason=HOSTILE)], cost_usd=0.0,
                         cost_by_agent={}, tokens_in=0, tokens_out=0, cache_hits=0, planner_cost_usd=0.0,
                         errors=[HOSTILE], validations=[], changed_files={}, message="")

    _assert_literal_and_revealed(_rendered(render_board(snap)))
