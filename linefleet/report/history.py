"""Metrics history from a JSON Lines file: one device `ReportedState` (as on the wire) a line.

The reconciler keeps only each device's latest report, so history comes from a file anyone can
append to (for example a subscriber to `linefleet/v1/+/+/reported`, or `linefleet report
--record`). Every bad line is reported with its line number; nothing is guessed.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from linefleet.report.data import MetricPoint
from linefleet_core.errors import Finding, FindingsError, UsageError
from linefleet_core.wire import LineMetrics, ReportedState

Key = tuple[str, str]
"""(line key `site/line`, device id): a line served by two devices has two series."""
History = dict[Key, list[MetricPoint]]
"""Points per (line, device), oldest first."""


def point(at: float, metrics: LineMetrics) -> MetricPoint:
    window = metrics.window_seconds
    measured = metrics.frames > 0  # no frames: no latency, rate or drift (not 0)
    return MetricPoint(
        at=at,
        latency_p95_ms=metrics.latency_p95_ms if measured else None,
        defect_rate=metrics.defect_rate if measured else None,
        frames_per_s=metrics.frames / window if window > 0 else None,
        drift_score=metrics.drift_score if measured else None,
        shadow_agreement=metrics.shadow_agreement,
    )


def points(report: ReportedState) -> Iterable[tuple[Key, MetricPoint]]:
    at = report.at.timestamp()
    for line in report.lines:
        if line.metrics is not None:
            yield (line.line, report.device), point(at, line.metrics)


def series(history: History, line: str, device: str | None = None) -> tuple[MetricPoint, ...]:
    """The points of `line` from `device`, or from the only device that reported it."""
    if device is not None:
        return tuple(history.get((line, device), ()))
    found = [points for (key, _), points in sorted(history.items()) if key == line]
    return tuple(found[0]) if len(found) == 1 else ()


def merge(history: History, extra: Iterable[tuple[Key, MetricPoint]]) -> History:
    """`history` plus `extra`, one point per (line, device, time), oldest first."""
    out: dict[Key, dict[float, MetricPoint]] = defaultdict(dict)
    for key, items in history.items():
        for item in items:
            out[key][item.at] = item
    for key, item in extra:
        out[key][item.at] = item
    return {key: [byat[t] for t in sorted(byat)] for key, byat in out.items()}


def read_history(path: Path) -> History:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--history {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--history {path}: cannot read ({exc})") from None
    found: list[tuple[Key, MetricPoint]] = []
    problems: list[Finding] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            found += points(ReportedState.model_validate_json(raw))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "(line)"
            problems.append(Finding(str(path), number, 0, where, first["msg"]))
    if problems:
        raise FindingsError(problems)
    return merge({}, found)


def record(path: Path, reports: Iterable[ReportedState]) -> int:
    """Append `reports` as JSON lines (one write, flushed and synced); returns how many."""
    lines = [json.dumps(r.model_dump(mode="json"), separators=(",", ":")) for r in reports]
    if not lines:
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
        out.flush()
    return len(lines)
