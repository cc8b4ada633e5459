"""A batch of inspector corrections from a line's HMI: JSON Lines, one correction per line.

`linefleet edge override --from FILE` (or `--from -` for standard input) reads, per line, an
object with `frame` and `label` (required), and `line`, `note` and `inspector` (optional; the
command's `--line`, `--note` and `--inspector` fill in what a row leaves out). Blank lines are
skipped. Every problem is collected and reported as `FILE:LINE: field: message`; nothing is
queued unless the whole file reads. What the rows say is then checked against the device's state by
`edge_puller/override.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from edge_puller.override import OverrideRequest
from linefleet_core import jsonlines
from linefleet_core.errors import UsageError
from linefleet_core.text import NOT_UNICODE, lone_surrogate

MAX_ROWS = 10_000
MAX_BYTES = 16 * 1024 * 1024
FIELDS = ("frame", "label", "line", "note", "inspector")
REQUIRED = ("frame", "label")


def read_corrections(
    source: str, *, inspector: str | None = None, line: str | None = None, note: str = ""
) -> list[OverrideRequest]:
    """The requests in `source` (a path, or `-` for standard input); `UsageError` lists every
    unreadable row."""
    name = "<stdin>" if source == "-" else source
    try:
        data = sys.stdin.buffer.read(MAX_BYTES + 1) if source == "-" else _read(Path(source))
    except OSError as exc:
        raise UsageError(f"--from {name}: cannot read ({exc.strerror or exc})") from None
    if len(data) > MAX_BYTES:
        raise UsageError(f"--from {name}: larger than {MAX_BYTES // 2**20} MB")
    given = {"inspector": inspector, "line": line, "note": note or None}
    defaults = {key: value for key, value in given.items() if value is not None}
    requests: list[OverrideRequest] = []
    errors: list[str] = []
    rows = [row for row in jsonlines.lines(data) if row[1].strip() or row[2]]
    if len(rows) > MAX_ROWS:
        raise UsageError(f"--from {name}: {len(rows)} corrections, at most {MAX_ROWS} at once")
    for number, raw, problem in rows:
        where = f"{name}:{number}"
        if problem is not None:
            errors.append(f"{where}: {problem}; save the file as UTF-8")
            continue
        try:
            requests.append(_row(raw, where, defaults))
        except ValueError as exc:
            errors.append(f"{where}: {exc}")
    if errors:
        raise UsageError("\n".join(errors))
    if not requests:
        raise UsageError(f"--from {name}: no corrections in it")
    return requests


def _read(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(MAX_BYTES + 1)


def _row(raw: str, where: str, defaults: dict[str, str]) -> OverrideRequest:
    try:
        row: Any = jsonlines.loads(raw)
    except jsonlines.DuplicateKey as exc:
        raise ValueError(f"{exc.key}: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(row, dict):
        raise ValueError("not a JSON object")
    if (field := lone_surrogate(row)) is not None:
        raise ValueError(f"{field}: {NOT_UNICODE}")
    known = ", ".join(FIELDS)
    problems = [f"{key}: unknown field (known: {known})" for key in row if key not in FIELDS]
    problems += [f"{key}: required" for key in REQUIRED if key not in row]
    problems += [
        f"{key}: must be a string" for key in FIELDS if key in row and not isinstance(row[key], str)
    ]
    if problems:
        raise ValueError("; ".join(problems))
    fields: dict[str, str] = {**defaults, **row}
    if "inspector" not in fields:
        raise ValueError("inspector: required (in the row, or --inspector)")
    return OverrideRequest(
        frame_id=fields["frame"],
        label=fields["label"],
        inspector=fields["inspector"],
        line=fields.get("line"),
        note=fields.get("note", ""),
        source=where,
    )
