"""Text from outside (a device's report, a broker payload) made safe for a terminal or a log.

A device may put anything in its `error` or `message`: ANSI escape sequences that clear the
operator's screen or retitle the window, carriage returns that overwrite the line before, bidi
overrides that reorder it. `printable()` writes every such character as a visible escape.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with control, bidi-override and line-separator characters escaped (`\\x1b`)."""
    return _UNSAFE.sub(_escape, text)


def printable_lines(text: str) -> str:
    """`printable`, line by line: a message of several lines keeps its line breaks (one error
    a line), while what a line quotes (a file name holding `ESC[2J`) is escaped."""
    return "\n".join(printable(line) for line in text.split("\n"))


NOT_UNICODE = "a string holds a lone surrogate escape (\\ud800-\\udfff unpaired): not Unicode text"
_SURROGATE = re.compile("[\ud800-\udfff]")
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
"""In JSON bytes, the escape of a surrogate (of a pair, or lone): only where it occurs can
`json.loads` give a lone one, so a hot path walks the parsed value only then."""


def lone_surrogate(value: object) -> str | None:
    """Where a parsed JSON value holds a lone UTF-16 surrogate (`"\\ud800"` with no pair) in a
    string or key (`details.predicted`, `(document)` for the value itself), or None.
    `json.loads` accepts the escape, but no UTF-8 text can hold the result: the first write of
    it (SQLite, `model_dump_json`, a terminal) raised. A valid pair (`"\\ud83d\\ude00"`) is
    one character once parsed, never a surrogate. Walked with a stack, not recursion: as deep
    as `json.loads` nests."""
    stack: list[tuple[str, object]] = [("", value)]
    while stack:
        at, item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return at or "(document)"
        elif isinstance(item, list):
            stack.extend((f"{at}[{i}]", v) for i, v in reversed(list(enumerate(item))))
        elif isinstance(item, dict):
            for key in item:
                if _SURROGATE.search(key):
                    return f"{at}.{key}" if at else key
            stack.extend((f"{at}.{k}" if at else k, v) for k, v in reversed(item.items()))
    return None
