"""`linefleet report --out FILE`: one self-contained HTML page about the fleet."""

from __future__ import annotations

import argparse
from pathlib import Path

from linefleet.options import seconds
from linefleet_core.atomic import write_atomic
from linefleet_core.errors import ExitCode, UsageError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report",
        help="write an HTML report: fleet map, metrics, rollout timeline, label queues",
        description=(
            "Write one self-contained HTML file (no network resources) for a plant manager. "
            "Every source is optional; a section without data says so. Exit 0; 1 on an invalid "
            "history file; 2 on a wrong option or missing path; 4 when the broker is unreachable."
        ),
    )
    p.add_argument("--out", type=Path, required=True, help="the HTML file to write")
    p.add_argument("--repo", type=Path, help="fleet repository: lines, thresholds, rollout history")
    p.add_argument("--broker", help="mqtt://HOST:PORT: the retained desired/reported state")
    p.add_argument("--state-dir", type=Path, help="state directory of `linefleet reconcile`")
    p.add_argument("--labels", help="label store: SQLAlchemy URL or SQLite file")
    p.add_argument(
        "--history", type=Path, help="JSON Lines of device reported states: metrics over time"
    )
    p.add_argument(
        "--record",
        action="store_true",
        help="append the devices' current reports to --history before rendering",
    )
    p.add_argument(
        "--quiet", type=seconds, default=0.5, help="seconds without a retained message = done"
    )
    p.set_defaults(run=run)


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` via a temporary file in the same folder: never half-written."""
    folder = path.parent if str(path.parent) else Path()
    if not folder.is_dir():
        raise UsageError(f"--out {path}: no folder {folder}")
    write_atomic(path, text.encode("utf-8"))


def run(ns: argparse.Namespace) -> int:
    from linefleet.report.page import build_report
    from linefleet.report.sources import Sources, collect

    src = Sources(
        repo=ns.repo,
        broker=ns.broker,
        state_dir=ns.state_dir,
        labels=ns.labels,
        history=ns.history,
        record=ns.record,
        quiet=ns.quiet,
    )
    data = collect(src)
    write_atomically(ns.out, build_report(data))
    lines = 0 if data.lines is None else len(data.lines)
    print(f"wrote {ns.out}: {lines} line(s), sources: {', '.join(data.sources) or 'none'}")
    return int(ExitCode.OK)
