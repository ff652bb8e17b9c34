"""The whole-file reply format: the forms small models write, and what must never be guessed."""

from __future__ import annotations

import pytest

from aetherflow.orchestrator.whole_protocol import WholeFile, parse_whole_reply

BODY = "def add(a, b):\n    return a + b\n"


@pytest.mark.parametrize("name_line", ["app/calc.py", "`app/calc.py`", "**app/calc.py**", "File: app/calc.py",
                                       "### app/calc.py"])
def test_the_file_name_on_the_line_before_the_fence(name_line: str) -> None:
    reply = parse_whole_reply(f"Here it is.\n\n{name_line}\n```python\n{BODY}```\nDone.", default_path=None)

    assert reply.files == [WholeFile("app/calc.py", BODY)]
    assert reply.errors == [] and "Here it is." in reply.prose and "app/calc.py" not in reply.prose


def test_the_file_name_in_the_fence_info_string() -> None:
    reply = parse_whole_reply(f"```python app/calc.py\n{BODY}```", default_path=None)

    assert reply.files == [WholeFile("app/calc.py", BODY)]


def test_an_unnamed_block_goes_to_the_only_target_and_the_longest_one_wins() -> None:
    text = f"```python\n{BODY}```\n\nUsage:\n\n```python\nprint(add(1, 2))\n```\n"

    reply = parse_whole_reply(text, default_path="calc.py")

    assert reply.files == [WholeFile("calc.py", BODY)]


def test_an_unnamed_block_without_a_single_target_is_reported_not_guessed() -> None:
    reply = parse_whole_reply(f"```python\n{BODY}```", default_path=None)

    assert reply.files == [] and "names no file" in reply.errors[0]


def test_a_named_block_without_its_closing_fence_is_not_applied() -> None:
    reply = parse_whole_reply(f"app/calc.py\n```python\n{BODY}", default_path="app/calc.py")

    assert reply.files == [] and "no closing fence" in reply.errors[0]


def test_several_files_and_a_longer_fence_around_content_with_backticks() -> None:
    doc = "Use it like this:\n```\nadd(1, 2)\n```\n"
    text = f"app/calc.py\n```python\n{BODY}```\n\nREADME.md\n````markdown\n{doc}````\n"

    reply = parse_whole_reply(text, default_path=None)

    assert reply.files == [WholeFile("app/calc.py", BODY), WholeFile("README.md", doc)]


def test_reference_files_are_listed_before_the_files_to_write() -> None:
    from aetherflow.orchestrator.scope import ScopeFile
    from aetherflow.orchestrator.whole_agent import files_text

    text = files_text([ScopeFile("calc.py", "x = 1\n", True), ScopeFile("test_calc.py", "import calc\n", False)])

    assert text.index("test_calc.py  (reference") < text.index("calc.py\n```")
