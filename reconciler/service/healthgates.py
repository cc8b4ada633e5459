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
    values: dict[Gate, float | None] = {
        Gate.DRIFT: metrics.drift_score,
        Gate.AGREEMENT: metrics.shadow_agreement,
        Gate.DEFECT_JUMP: metrics.candidate_defect_rate - metrics.defect_rate,
        Gate.ERROR_RATE: metrics.candidate_error_rate if candidate else metrics.error_rate,
        Gate.LATENCY: metrics.candidate_latency_p95_ms if candidate else metrics.latency_p95_ms,
    }
    return values[rule.gate], frames


@functools.cache
def _judged_twice(table: tuple[Rule, ...]) -> frozenset[Gate]:
    """Gates a stage judges on both models (named "candidate" when the candidate breaks it)."""
    return frozenset(g for g, n in Counter(r.gate for r in table).items() if n > 1)


def violations(
    metrics: LineMetrics, gates: HealthGatesSpec, *, stage: str | None
) -> list[Violation]:
    """Gates broken at `stage`: the candidate's in canary (its agreement in shadow too), the
    serving model's otherwise, drift always (`linefleet_core.gaterules`)."""
    table = rules(stage)
    both = _judged_twice(table)
    out: list[Violation] = []
    for rule in table:
        value, frames = _measured(metrics, rule)
        if value is None or frames < rule.gate.min_frames:
            continue
        threshold = float(getattr(gates, rule.gate.value))
        if value < threshold if rule.gate.is_minimum else value > threshold:
            named = rule.gate in both and rule.subject is Subject.CANDIDATE
            out.append(Violation(rule.gate.value, value, threshold, "candidate" if named else ""))
    return out


def field_escape_violation(estimate: Rate | None, limit: float | None) -> Violation | None:
    """The field escape gate: broken when even the lower 95% bound of the line's escape rate
    estimated from labelled audit samples is above `limit`, that is when the samples are
    evidence that the line lets more through (a high rate on too few samples is not; the value
    shown is that bound)."""
    if estimate is None or limit is None or estimate.of == 0 or estimate.low <= limit:
        return None
    return Violation(FIELD_ESCAPE, estimate.low, limit, "lower bound of")
