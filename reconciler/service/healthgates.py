"""Health gates on reported line metrics: which are past the thresholds of the desired state
(pure). Which gates apply at which stage, on which model and over how many frames is the table
in `linefleet_core.gaterules`, the one the edge reads too.

The edge applies the same table to roll a candidate back at once; the reconciler uses it to
show a line as Degraded and to propose the rollback in git.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from linefleet_core.gaterules import Gate, Rule, Subject, rules
from linefleet_core.wire import HealthGatesSpec, LineMetrics

if TYPE_CHECKING:
    from linefleet_core.catalogue import Rate

FIELD_ESCAPE = "max_field_escape_rate"


@dataclass(frozen=True)
class Violation:
    gate: str
    value: float
    threshold: float
    subject: str = ""
    """"candidate" when the gate is judged on both models at this stage (shadow latency)."""

    def render(self) -> str:
        sign = "<" if self.gate.startswith("min_") else ">"
        who = f"{self.subject} " if self.subject else ""
        return f"{who}{self.gate}: {self.value:.3g} {sign} {self.threshold:.3g}"


def _measured(metrics: LineMetrics, rule: Rule) -> tuple[float | None, int]:
    """The value a rule judges and how many frames it stands on."""
    candidate = rule.subject is Subject.CANDIDATE
    frames = metrics.candidate_frames if candidate else metrics.frames
    gate = rule.gate
    if gate is Gate.DRIFT:
        return metrics.drift_score, frames
    if gate is Gate.AGREEMENT:
        return metrics.shadow_agreement, frames
    if gate is Gate.DEFECT_JUMP:
        return metrics.candidate_defect_rate - metrics.defect_rate, frames
    if gate is Gate.ERROR_RATE:
        return (metrics.candidate_error_rate if candidate else metrics.error_rate), frames
    return (metrics.candidate_latency_p95_ms if candidate else metrics.latency_p95_ms), frames


@dataclass(frozen=True)
class _Check:
    """One rule of a stage's table, with what judging it needs worked out once."""

    rule: Rule
    min_frames: int
    is_minimum: bool
    name: str
    """"candidate" when the gate is judged on both models at this stage."""


@functools.cache
def _checks(table: tuple[Rule, ...]) -> tuple[_Check, ...]:
    both = frozenset(g for g, n in Counter(r.gate for r in table).items() if n > 1)
    return tuple(
        _Check(
            rule,
            rule.gate.min_frames,
            rule.gate.is_minimum,
            "candidate" if rule.gate in both and rule.subject is Subject.CANDIDATE else "",
        )
        for rule in table
    )


def violations(
    metrics: LineMetrics, gates: HealthGatesSpec, *, stage: str | None
) -> list[Violation]:
    """Gates broken at `stage`: the candidate's in canary (its agreement in shadow too), the
    serving model's otherwise, drift always (`linefleet_core.gaterules`)."""
    out: list[Violation] = []
    for check in _checks(rules(stage)):
        value, frames = _measured(metrics, check.rule)
        if value is None or frames < check.min_frames:
            continue
        gate = check.rule.gate.value
        threshold = float(getattr(gates, gate))
        if value < threshold if check.is_minimum else value > threshold:
            out.append(Violation(gate, value, threshold, check.name))
    return out


def field_escape_violation(estimate: Rate | None, limit: float | None) -> Violation | None:
    """The field escape gate: broken when even the lower 95% bound of the line's escape rate
    estimated from labelled audit samples is above `limit`, that is when the samples are
    evidence that the line lets more through (a high rate on too few samples is not; the value
    shown is that bound)."""
    if estimate is None or limit is None or estimate.of == 0 or estimate.low <= limit:
        return None
    return Violation(FIELD_ESCAPE, estimate.low, limit, "lower bound of")
