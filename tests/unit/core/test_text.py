"""Text from outside: escaped for a terminal, and refused when it is not Unicode at all."""

from __future__ import annotations

import json

import pytest

from linefleet_core.text import lone_surrogate, printable_lines


def test_printable_lines_keeps_line_breaks_and_escapes_the_rest() -> None:
    assert (
        printable_lines("a\x1b[2J.png: bad\nb\r.png: bad") == "a\\x1b[2J.png: bad\nb\\x0d.png: bad"
    )


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{"image": "\\ud800.png"}', "image"),
        ('{"details": {"predicted": "ok\\udfff"}}', "details.predicted"),
        ('{"lines": [{"line": "a"}, {"message": "\\udc80"}]}', "lines[1].message"),
        ('{"\\ud800": 1}', "\ud800"),
        ('"\\ud800"', "(document)"),
        ('{"emoji": "\\ud83d\\ude00", "deep": [[["x"]]]}', None),  # a pair is one character
    ],
)
def test_a_lone_surrogate_is_found_and_located(text: str, where: str | None) -> None:
    assert lone_surrogate(json.loads(text)) == where


def test_the_walk_goes_as_deep_as_json_nests_without_recursion() -> None:
    deep = json.loads("[" * 900 + '"\\ud800"' + "]" * 900)
    assert lone_surrogate(deep) == "[0]" * 900
