"""The inspector station: a person at the line who corrects the model's wrong calls.

The demo knows each frame's true class, so it plays the inspector: for frames where the edge's
decision differs from the truth, it writes the corrections to a file and runs one
`linefleet edge override --from FILE` on the device's state directory, as the line's HMI
would. The agent sends each correction with its frame (`inspection-override` event,
docs/protocol.md sections 7 and 9), and the trainer picks them up from the broker
(`linefleet labels ingest-events --broker`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from linefleet.demo.camera import Shot
from linefleet.demo.context import Demo, StageFailed

INSPECTOR = "inspector-1"
USAGE = 2  # `edge override`: the decision is not recorded yet (or the frame is unknown)


def overrides(
    shots: dict[str, Shot], decisions: Sequence[dict[str, Any]], limit: int
) -> list[tuple[Shot, dict[str, Any]]]:
    """(frame, decision) pairs where a decided label is wrong, at most `limit`."""
    wrong = []
    for decision in decisions:
        shot = shots.get(str(decision.get("frame_id")))
        label = decision.get("label")
        if shot is not None and label is not None and label != shot.truth:
            wrong.append((shot, decision))
    return wrong[:limit]


def correct(
    demo: Demo, state_dir: Path, pairs: Sequence[tuple[Shot, dict[str, Any]]], timeout: float = 10.0
) -> int:
    """Send the pairs' corrections in one `linefleet edge override --from FILE` on the device,
    as the line's HMI would after an inspector's review; return how many were queued."""
    batch = state_dir.parent / "corrections.jsonl"
    rows = [
        {"frame": str(decision["frame_id"]), "label": shot.truth, "line": shot.line}
        for shot, decision in pairs
    ]
    batch.write_text("".join(json.dumps(row) + "\n" for row in rows))
    args = ["edge", "override", "--state-dir", str(state_dir), "--from", str(batch),
            "--inspector", INSPECTOR]  # fmt: skip
    demo.console.command(["linefleet", *args])
    deadline = time.monotonic() + timeout
    while (done := demo.lf(*args, show=False, ok=(0, USAGE))).returncode:
        if time.monotonic() >= deadline:  # the agent records decisions a moment later
            raise StageFailed(f"`linefleet {' '.join(args)}` exited with 2", done.output)
        time.sleep(0.3)
    demo.console.output(done.output, limit=4)
    return len(pairs)


def collect(demo: Demo, expected: int, timeout: float = 60.0) -> int:
    """Let the trainer listen on the broker until `expected` overrides are queued for QA."""
    queued = 0
    deadline = time.monotonic() + timeout
    ws = ["--state", str(demo.trainer), "--fleet-repo", str(demo.repo)]
    while queued < expected:
        args = ["labels", "ingest-events", "--broker", demo.broker_url, "--seconds", "2", *ws]
        done = demo.lf(*args, show=queued == 0, limit=3)
        found = re.search(r"queued (\d+) override", done.stdout)
        queued += int(found.group(1)) if found else 0
        if queued < expected and time.monotonic() >= deadline:
            raise StageFailed(
                f"the trainer received {queued} of {expected} overrides in {timeout:g} s",
                done.output,
            )
    return queued
