"""The devices' reports over time, for the demo's HTML report.

The reconciler keeps only each device's latest report, so after every stage the demo appends
the current ones to `history.jsonl` with `linefleet report --record` (already recorded reports
are not added twice). The final report reads that file with `--history`, and its charts show
the rollout stage by stage instead of one point per line.
"""

from __future__ import annotations

from pathlib import Path

from linefleet.demo.context import Demo

HISTORY = "history.jsonl"


def history_file(demo: Demo) -> Path:
    return demo.root / HISTORY


def record(demo: Demo) -> None:
    """Append the devices' current reports to the history (quietly; it also refreshes
    `report.html` from the broker alone, which the last stage rewrites in full)."""
    demo.lf(
        "report", "--out", str(demo.root / "report.html"), "--broker", demo.broker_url,
        "--history", str(history_file(demo)), "--record", show=False,
    )  # fmt: skip
