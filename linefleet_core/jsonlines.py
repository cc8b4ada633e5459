"""JSON Lines split the way they are written: at `\n` only, each line decoded on its own.

    for number, text, problem in jsonlines.lines(data):
        if problem: report(f"{path}:{number}: {problem}")

`str.splitlines` also breaks at U+2028, U+2029, U+0085 and other separators that JSON text
may hold inside a string (an inspector's note pasted from a word processor), which cut a valid
row in two; and decoding the whole file first turned one Latin-1 byte into an error for the
file, located by byte offset. Here a line that is not UTF-8 is that line's problem (its text
is empty), a `\r` before the `\n` and a byte-order mark at the start are dropped.
"""

from __future__ import annotations

from collections.abc import Iterator

BOM = b"\xef\xbb\xbf"


def lines(data: bytes) -> Iterator[tuple[int, str, str | None]]:
    """(1-based line number, text, problem or None) for every line, blank ones included."""
    for number, raw in enumerate(data.removeprefix(BOM).split(b"\n"), start=1):
        try:
            yield number, raw.decode("utf-8").removesuffix("\r"), None
        except UnicodeDecodeError as exc:
            byte = raw[exc.start]
            yield number, "", f"not valid UTF-8 (byte 0x{byte:02x} at column {exc.start + 1})"
