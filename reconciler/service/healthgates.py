"""Health gates: which reported line metrics are past the thresholds of its desired state (pure).

The edge applies the same gates to roll a canary back at once; the reconciler uses them to
show a line as Degraded and to propose the rollback in git.
"""

from __future__ import annotations

from dataclasses import dataclass

from linefleet_core.wire import HealthGatesSpec, LineMetrics

MIN_FRAMES = 50
"""Below this many (candidate) frames in the window, rates are too noisy to judge."""


@dataclass(frozen=True)
class Violation:
    gate: str
    value: float
    threshold: float

    def render(self) -> str:
        sign = "<" if self.gate.startswith("min_") else ">"
        return f"{self.gate}: {self.value:.3g} {sign} {self.threshold:.3g}"


def violations(
    metrics: LineMetrics, gates: HealthGatesSpec, *, stage: str | None, min_frames: int = MIN_FRAMES
) -> list[Violation]:
    """Gates broken by the model under test: the candidate in canary, else the serving model.

    In shadow only agreement is judged (the candidate decides nothing, so its error and
    defect rates say nothing about the line); drift is judged on the serving model always.
    """
    out: list[Violation] = []
    if metrics.frames >= min_frames and metrics.drift_score > gates.max_drift_score:
        out.append(Violation("max_drift_score", metrics.drift_score, gates.max_drift_score))
    if stage in ("shadow", "canary") and metrics.candidate_frames >= min_frames:
        agreement = metrics.shadow_agreement
        if agreement is not None and agreement < gates.min_shadow_agreement:
            out.append(Violation("min_shadow_agreement", agreement, gates.min_shadow_agreement))
    if stage == "canary":
        if metrics.candidate_frames < min_frames:
            return out
        error, latency = metrics.candidate_error_rate, metrics.candidate_latency_p95_ms
        jump = metrics.candidate_defect_rate - metrics.defect_rate
        if jump > gates.max_defect_rate_jump:
            out.append(Violation("max_defect_rate_jump", jump, gates.max_defect_rate_jump))
    elif metrics.frames >= min_frames:
        error, latency = metrics.error_rate, metrics.latency_p95_ms
    else:
        return out
    if error > gates.max_error_rate:
        out.append(Violation("max_error_rate", error, gates.max_error_rate))
    if latency > gates.max_latency_p95_ms:
        out.append(Violation("max_latency_p95_ms", latency, gates.max_latency_p95_ms))
    return out
