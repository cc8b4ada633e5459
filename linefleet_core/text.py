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
