"""Search/replace edits: exact, tolerant, re-indented, CRLF-preserving, and the failure message for the model."""

from __future__ import annotations

import pytest

from aetherflow.workspace.edits import EditError, apply_search_replace, search_replace

SOURCE = "def login(user):\n    return check(user)\n\n\ndef check(user):\n    return bool(user)\n"


def test_exact_unique_match() -> None:
    out = apply_search_replace(SOURCE, "    return check(user)\n", "    return verify(user)\n")
    assert out == SOURCE.replace("return check(user)", "return verify(user)")


def test_multiple_exact_matches_are_reported_with_their_lines() -> None:
    with pytest.raises(EditError) as info:
        apply_search_replace(SOURCE, "(user):\n", "(u):\n", path="app/auth.py")
    assert info.value.message == (
        "The search text matches 2 places in app/auth.py (starting at lines 1, 5). Include more surrounding "
        "lines in the search text so that it matches exactly one place."
    )


def test_trailing_whitespace_is_tolerated() -> None:
    text = "a = 1   \nb = 2\t\nc = 3\n"
    result = search_replace(text, "a = 1\nb = 2\n", "a = 10\nb = 20\n")
    assert result.match == "trailing_whitespace"
    assert result.text == "a = 10\nb = 20\nc = 3\n"
    assert result.line == 1


def test_indentation_difference_is_tolerated_and_replacement_reindented() -> None:
    text = "class A:\n    def f(self):\n        if x:\n            return 1\n        return 2\n"
    search = "if x:\n    return 1\n"
    replace = "if x:\n    log()\n    return 1\n"
    result = search_replace(text, search, replace)
    assert result.match == "indentation"
    assert result.text == (
        "class A:\n    def f(self):\n        if x:\n            log()\n            return 1\n        return 2\n"
    )


def test_over_indented_search_is_dedented_to_the_file() -> None:
    text = "def f():\n  return 1\n"
    result = search_replace(text, "        def f():\n          return 1\n", "        def g():\n          return 2\n")
    assert result.text == "def g():\n  return 2\n"


def test_tolerant_match_must_still_be_unique() -> None:
    text = "if a:\n    x = 1\nif b:\n        x = 1\n"
    with pytest.raises(EditError, match="matches 2 places"):
        apply_search_replace(text, "x = 1 \n", "x = 2\n")


def test_empty_search_on_empty_file_writes() -> None:
    assert apply_search_replace("", "", "print('hi')\n") == "print('hi')\n"


def test_empty_search_on_non_empty_file_is_refused() -> None:
    with pytest.raises(EditError, match="search text is empty but x.py is not empty"):
        apply_search_replace("x = 1\n", "  \n", "y\n", path="x.py")


def test_crlf_file_keeps_crlf_whatever_the_model_sent() -> None:
    text = "one\r\ntwo\r\nthree\r\n"
    assert apply_search_replace(text, "two\n", "TWO\nTWO-B\n") == "one\r\nTWO\r\nTWO-B\r\nthree\r\n"
    assert apply_search_replace(text, "two\r\n", "2\r\n") == "one\r\n2\r\nthree\r\n"


def test_mixed_line_endings_are_left_alone_outside_the_edit() -> None:
    text = "a\r\nb\nc\r\n"
    assert apply_search_replace(text, "b\n", "B\n") == "a\r\nB\nc\r\n"


def test_not_found_message_shows_closest_lines_and_the_fix() -> None:
    text = "".join(f"x{i} = {i}\n" for i in range(1, 12)) + "def total(items):\n    return sum(items)\n"
    with pytest.raises(EditError) as info:
        apply_search_replace(text, "def total(values):\n    return sum(values)\n", "", path="calc.py")
    assert info.value.message == (
        "The search text was not found in calc.py.\n"
        "The closest lines are 12-13 (81% similar):\n"
        "   12 | def total(items):\n"
        "   13 |     return sum(items)\n"
        "First difference: line 12 is 'def total(items):' but the search text has 'def total(values):'.\n"
        "The search text must match the file's lines exactly (differences in trailing whitespace and in "
        "indentation are tolerated). Read the file again with read_file and copy the lines to change exactly."
    )


def test_not_found_without_anything_similar_still_advises() -> None:
    with pytest.raises(EditError) as info:
        apply_search_replace("alpha\nbeta\n", "zzzz qqqq\n", "", path="f.txt")
    assert info.value.message.startswith("The search text was not found in f.txt.\nThe search text must match")
