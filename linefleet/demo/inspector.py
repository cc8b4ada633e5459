"""The inspector station: a person at the line who corrects the model's wrong calls.

The demo knows each frame's true class, so it plays the inspector: for frames where the edge's
decision differs from the truth, it runs `linefleet edge override` on the device's state
directory, as an inspector at the line's HMI would. The agent sends each correction with its
frame (`inspection-override` event, docs/protocol.md sections 7 and 9), and the trainer picks
them up from the broker (`linefleet labels ingest-events --broker`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
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
    demo: Demo, state_dir: str, pairs: Sequence[tuple[Shot, dict[str, Any]]], timeout: float = 10.0
) -> int:
    """Run `linefleet edge override` for each pair on the device; return how many were queued."""
    for n, (shot, decision) in enumerate(pairs, start=1):
        args = ["edge", "override", "--state-dir", state_dir, "--frame", str(decision["frame_id"]),
                "--label", shot.truth, "--inspector", INSPECTOR, "--line", shot.line]  # fmt: skip
        deadline = time.monotonic() + timeout
        while (done := demo.lf(*args, show=n == 1, limit=2, ok=(0, USAGE))).returncode:
            if time.monotonic() >= deadline:  # the agent records decisions a moment later
                raise StageFailed(f"`linefleet {' '.join(args)}` exited with 2", done.output)
            time.sleep(0.3)
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
