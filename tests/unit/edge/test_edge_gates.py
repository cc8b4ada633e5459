"""The edge's health gates over a rolling window of candidate frames (pure, table-tested)."""

from __future__ import annotations

import pytest

from edge_puller.gatewindow import (
    GATE_WINDOW,
    MIN_GATE_FRAMES,
    MIN_LATENCY_SAMPLES,
    GateWindow,
    Sample,
    judge,
)
from linefleet_core.refs import CandidateStage as Stage
from tests.support.wiremodels import gates

GATES = gates(max_latency_p95_ms=10.0, min_shadow_agreement=0.9, max_defect_rate_jump=0.05)
GOOD = Sample(latency_ms=2.0, agrees=True, candidate_defect=False, serving_defect=False)
DISAGREES = Sample(latency_ms=2.0, agrees=False, candidate_defect=False, serving_defect=True)
SLOW = Sample(latency_ms=50.0, agrees=True, candidate_defect=False, serving_defect=False)
# The candidate calls a defect the serving model does not see: a disagreement and a jump.
FALSE_ALARM = Sample(latency_ms=2.0, agrees=False, candidate_defect=True, serving_defect=False)
SLOW_AND_WRONG = Sample(latency_ms=50.0, agrees=False, candidate_defect=False, serving_defect=True)
BOTH_DEFECT = Sample(latency_ms=2.0, agrees=True, candidate_defect=True, serving_defect=True)


def _window(*runs: tuple[int, Sample], size: int = GATE_WINDOW) -> GateWindow:
    window = GateWindow(size=size)
    for count, sample in runs:
        for _ in range(count):
            window.add(sample)
    return window


@pytest.mark.parametrize(
    ("runs", "stage", "gate"),
    [
        # too few frames to judge rates, however bad they are
        (((MIN_GATE_FRAMES - 1, DISAGREES),), "canary", None),
        (((MIN_GATE_FRAMES, DISAGREES),), "canary", "min_shadow_agreement"),
        # in shadow the candidate decides nothing: disagreement is the reconciler's to judge
        (((GATE_WINDOW, DISAGREES),), "shadow", None),
        # ... but a slow shadow slows every frame
        (((MIN_LATENCY_SAMPLES, SLOW),), "shadow", "max_latency_p95_ms"),
        (((MIN_LATENCY_SAMPLES - 1, SLOW),), "canary", None),
        # fine for a long time, then bad: judged on the recent frames, not diluted by the past
        (
            ((10 * GATE_WINDOW, GOOD), (GATE_WINDOW // 5, DISAGREES)),
            "canary",
            "min_shadow_agreement",
        ),
        (((10 * GATE_WINDOW, GOOD), (GATE_WINDOW // 20, DISAGREES)), "canary", None),
        # a bad start is forgotten once the window has moved past it
        (((GATE_WINDOW, DISAGREES), (GATE_WINDOW, GOOD)), "canary", None),
        (((GATE_WINDOW, SLOW), (GATE_WINDOW, GOOD)), "canary", None),
        # agreement high enough, but the candidate calls too many defects
        (((180, BOTH_DEFECT), (12, FALSE_ALARM), (8, GOOD)), "canary", "max_defect_rate_jump"),
        (((190, GOOD), (8, FALSE_ALARM), (2, GOOD)), "canary", None),
        # latency comes first: it is the gate that hurts every frame
        (((GATE_WINDOW, SLOW_AND_WRONG),), "canary", "max_latency_p95_ms"),
        (((GATE_WINDOW, GOOD),), None, None),
    ],
)
def test_gates_judge_the_recent_window(
    runs: tuple[tuple[int, Sample], ...], stage: Stage | None, gate: str | None
) -> None:
    crossed = judge(_window(*runs), GATES, stage, "cand@2")
    assert (crossed.gate if crossed else None) == gate


def test_window_keeps_running_counts_of_exactly_the_last_frames() -> None:
    window = _window((7, DISAGREES), (5, GOOD), (3, FALSE_ALARM), size=10)
    assert window.frames == 10
    kept = list(window.samples)
    assert kept == [DISAGREES] * 2 + [GOOD] * 5 + [FALSE_ALARM] * 3
    assert window.agreements == sum(s.agrees for s in kept) == 5
    assert window.candidate_defects == 3 and window.serving_defects == 2


def test_message_names_the_gate_the_value_and_the_window() -> None:
    crossed = judge(_window((60, GOOD), (40, DISAGREES)), GATES, "canary", "cand@2")
    assert crossed is not None
    assert crossed.message == (
        "cand@2 agrees with the serving model on 60.0% of the last 100 candidate frames < 90%"
    )
