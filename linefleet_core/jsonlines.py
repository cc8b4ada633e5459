"""JSON Lines split the way they are written: at `\n` only, each line decoded on its own.

    for number, text, problem in jsonlines.lines(data):
        if problem: report(f"{path}:{number}: {problem}")

`str.splitlines` also breaks at U+2028, U+2029, U+0085 and other separators that JSON text
may hold inside a string (an inspector's note pasted from a word processor), which cut a valid
row in two; and decoding the whole file first turned one Latin-1 byte into an error for the
file, located by byte offset. Here a line that is not UTF-8 is that line's problem (its text
is empty), a `\r` before the `\n` and a byte-order mark at the start are dropped.

    row = jsonlines.loads(text)   # json.loads, but a key given twice in an object is refused

Another tool's row `{"class": "ok", ..., "class": "dent"}` is ambiguous: `json.loads` keeps
the last value without a word, so a label could change silently (as YAML fleet files refuse
duplicate keys, so do these rows).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

BOM = b"\xef\xbb\xbf"


class DuplicateKey(ValueError):
    """An object of the row gives `key` twice."""

    def __init__(self, key: str) -> None:
        super().__init__("given twice in one object; keep the value that is meant")
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(key)
        out[key] = value
    return out


def loads(text: str) -> Any:
    """`json.loads(text)`; raises `DuplicateKey` for an object that gives a key twice (and
    `json.JSONDecodeError` as json.loads does)."""
    return json.loads(text, object_pairs_hook=_unique)


def lines(data: bytes) -> Iterator[tuple[int, str, str | None]]:
    """(1-based line number, text, problem or None) for every line, blank ones included."""
    for number, raw in enumerate(data.removeprefix(BOM).split(b"\n"), start=1):
        try:
            yield number, raw.decode("utf-8").removesuffix("\r"), None
        except UnicodeDecodeError as exc:
            byte = raw[exc.start]
            yield number, "", f"not valid UTF-8 (byte 0x{byte:02x} at column {exc.start + 1})"
