"""The device's own safety net: health gates judged over a rolling window of candidate frames.

The engine feeds every frame a candidate ran on into a `GateWindow` (its latency, whether it
agreed with the serving model, and whether each called a defect), then asks `judge` whether a
gate is crossed. Only the last `GATE_WINDOW` candidate frames count, so a candidate that was
fine for hours and then goes bad (a lighting change makes it disagree) trips within a window's
worth of bad frames instead of being diluted by its good past; and a bad start is forgotten
once the window has moved past it.

Which gates the device judges at which stage, and the minimum frames, come from the one table
the reconciler reads too (`linefleet_core.gaterules`); the thresholds are the line's
`health_gates`. The window size is the device's own (the fleet contract has no window fields).

- latency (shadow and canary: a slow shadow slows every frame): p95 over the window above
  `max_latency_p95_ms`, once the window holds `MIN_LATENCY_SAMPLES` frames;
- canary only (in shadow the candidate decides nothing, so disagreement is the reconciler's to
  judge): agreement with the serving model below `min_shadow_agreement`, or the candidate's
  defect rate above the serving model's on the same frames by more than `max_defect_rate_jump`,
  once the window holds `MIN_GATE_FRAMES` frames.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

import numpy as np

from linefleet_core import gaterules
from linefleet_core.gaterules import Gate
from linefleet_core.refs import CandidateStage
from linefleet_core.wire import HealthGatesSpec

GATE_WINDOW = 200
"""Candidate frames the gates look back over."""
MIN_GATE_FRAMES = gaterules.MIN_RATE_FRAMES
"""Agreement and defect rates are judged only once the window holds this many frames."""
MIN_LATENCY_SAMPLES = gaterules.MIN_LATENCY_FRAMES
"""Latency p95 is judged only once the window holds this many frames."""


@dataclass(frozen=True)
class Sample:
    """One frame the candidate ran on."""

    latency_ms: float
    agrees: bool
    candidate_defect: bool
    serving_defect: bool


@dataclass(frozen=True)
class Crossed:
    """A gate the candidate is past: its name (the event's `reason`) and why."""

    gate: str
    message: str


@dataclass
class GateWindow:
    """The last `size` samples, with running counts so each frame costs O(1) to add."""

    size: int = GATE_WINDOW
    samples: collections.deque[Sample] = field(default_factory=collections.deque)
    agreements: int = 0
    candidate_defects: int = 0
    serving_defects: int = 0

    def add(self, sample: Sample) -> None:
        if len(self.samples) == self.size:
            self._count(self.samples.popleft(), -1)
        self.samples.append(sample)
        self._count(sample, 1)

    def _count(self, sample: Sample, sign: int) -> None:
        self.agreements += sign * sample.agrees
        self.candidate_defects += sign * sample.candidate_defect
        self.serving_defects += sign * sample.serving_defect

    @property
    def frames(self) -> int:
        return len(self.samples)

    def latency_p95(self) -> float:
        latencies = np.fromiter((s.latency_ms for s in self.samples), dtype=np.float64)
        return float(np.percentile(latencies, 95)) if latencies.size else 0.0


def judge(
    window: GateWindow,
    gates: HealthGatesSpec,
    stage: CandidateStage | None,
    ref: str,
    min_frames: int = MIN_GATE_FRAMES,
    min_latency_samples: int = MIN_LATENCY_SAMPLES,
) -> Crossed | None:
    """The first gate the candidate `ref` is past over `window`, or None (pure)."""
    n = window.frames
    last = f"the last {n} candidate frames"
    judged = gaterules.on_device(stage)
    if Gate.LATENCY in judged and n >= min_latency_samples:
        p95 = window.latency_p95()
        if p95 > gates.max_latency_p95_ms:
            return Crossed(
                Gate.LATENCY.value,
                f"{ref} p95 latency {p95:.2f} ms > {gates.max_latency_p95_ms:g} ms over {last}",
            )
    if n < min_frames:
        return None
    agreement = window.agreements / n
    if Gate.AGREEMENT in judged and agreement < gates.min_shadow_agreement:
        return Crossed(
            Gate.AGREEMENT.value,
            f"{ref} agrees with the serving model on {agreement:.1%} of {last} "
            f"< {gates.min_shadow_agreement:.0%}",
        )
    jump = (window.candidate_defects - window.serving_defects) / n
    if Gate.DEFECT_JUMP in judged and jump > gates.max_defect_rate_jump:
        return Crossed(
            Gate.DEFECT_JUMP.value,
            f"{ref} defect rate is {jump:.1%} above the serving model's over {last} "
            f"> {gates.max_defect_rate_jump:.1%}",
        )
    return None
