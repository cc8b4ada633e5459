"""The one table of which health gates apply at which stage, read by the edge and the reconciler."""

from __future__ import annotations

import pytest

from edge_puller.gatewindow import GateWindow, Sample, judge
from linefleet_core.fleet import HealthGates
from linefleet_core.gaterules import MIN_LATENCY_FRAMES, MIN_RATE_FRAMES, RULES, Gate, on_device
from linefleet_core.wire import HealthGatesSpec, LineMetrics
from reconciler.service.healthgates import violations

GATES = HealthGates()
SPEC = HealthGatesSpec.model_validate(GATES.model_dump())
FRAMES = max(MIN_RATE_FRAMES, MIN_LATENCY_FRAMES)
# One candidate behaviour per gate the device can judge, and the same behaviour as reported metrics.
BAD_SAMPLE = {
    Gate.LATENCY: Sample(latency_ms=1e4, agrees=True, candidate_defect=False, serving_defect=False),
    Gate.AGREEMENT: Sample(
        latency_ms=1.0, agrees=False, candidate_defect=False, serving_defect=False
    ),
    Gate.DEFECT_JUMP: Sample(
        latency_ms=1.0, agrees=True, candidate_defect=True, serving_defect=False
    ),
}
BAD_METRICS = {
    Gate.LATENCY: {"candidate_latency_p95_ms": 1e4},
    Gate.AGREEMENT: {"shadow_agreement": 0.0},
    Gate.DEFECT_JUMP: {"candidate_defect_rate": 1.0, "defect_rate": 0.0},
}


@pytest.mark.parametrize("stage", list(RULES))
def test_what_the_device_rolls_back_for_the_reconciler_shows_as_a_broken_gate(
    stage: str | None,
) -> None:
    for gate in on_device(stage):
        window = GateWindow()
        for _ in range(FRAMES):
            window.add(BAD_SAMPLE[gate])
        crossed = judge(window, GATES, stage, "cand@2")  # type: ignore[arg-type]
        assert crossed is not None and crossed.gate == gate.value
        values = {"window_seconds": 60.0, "frames": FRAMES, "candidate_frames": FRAMES}
        metrics = LineMetrics.model_validate({**values, **BAD_METRICS[gate]})
        assert gate.value in [v.gate for v in violations(metrics, SPEC, stage=stage)]


@pytest.mark.parametrize("stage", list(RULES))
def test_the_device_judges_nothing_outside_the_table(stage: str | None) -> None:
    for gate, sample in BAD_SAMPLE.items():
        if gate in on_device(stage):
            continue
        window = GateWindow()
        for _ in range(FRAMES):
            window.add(sample)
        assert judge(window, GATES, stage, "cand@2") is None  # type: ignore[arg-type]


def test_shadow_latency_is_judged_on_both_models_and_says_which() -> None:
    values = {"window_seconds": 60.0, "frames": 100, "candidate_frames": 100}
    slow = LineMetrics.model_validate({**values, "candidate_latency_p95_ms": 500.0})
    [found] = violations(slow, SPEC, stage="shadow")
    assert found.render() == "candidate max_latency_p95_ms: 500 > 100"
    slow_serving = LineMetrics.model_validate({**values, "latency_p95_ms": 500.0})
    [found] = violations(slow_serving, SPEC, stage="shadow")
    assert found.render() == "max_latency_p95_ms: 500 > 100"
