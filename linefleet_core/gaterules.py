"""Which health gates apply at which rollout stage, on which model, and who acts on them: the one
table the reconciler (`reconciler.service.healthgates`, judging reported metrics) and the edge
(`edge_puller.gatewindow`, judging its own window of candidate frames) both read.

| stage  | gate                   | judged on | the device rolls back by itself |
|--------|------------------------|-----------|---------------------------------|
| any    | `max_drift_score`      | serving   | no (drift is the fleet's view)  |
| none   | `max_error_rate`       | serving   | no                              |
| none   | `max_latency_p95_ms`   | serving   | no                              |
| shadow | `min_shadow_agreement` | candidate | no (1)                          |
| shadow | `max_error_rate`       | serving   | no                              |
| shadow | `max_latency_p95_ms`   | serving   | no                              |
| shadow | `max_latency_p95_ms`   | candidate | yes: a slow shadow slows every frame |
| canary | `min_shadow_agreement` | candidate | yes                             |
| canary | `max_defect_rate_jump` | candidate | yes                             |
| canary | `max_error_rate`       | candidate | no (2)                          |
| canary | `max_latency_p95_ms`   | candidate | yes                             |

One gate is the fleet's alone: `max_field_escape_rate` (any stage, on the serving model) is
judged from the labels of the edge's audit samples, which only the trainer's label store holds;
`linefleet status --labels` and the report judge it on the estimate's lower 95% bound
(`reconciler.service.healthgates.field_escape_violation`). It is not in this table and never
reaches a device.

(1) In shadow the candidate decides nothing: low agreement is evidence against promoting it,
shown as Degraded, not a reason to stop collecting that evidence. (2) The device's window
counts no errors; a candidate that fails to load or run is its own event.

A rate is judged once `MIN_RATE_FRAMES` frames of that model are counted (fewer are too noisy);
a p95 latency once `MIN_LATENCY_FRAMES` are. The thresholds are the line's `health_gates`.
Everything the device acts on, the reconciler judges too, so a device's own rollback is never a
surprise to the fleet view.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

MIN_RATE_FRAMES = 50
"""Agreement, error and defect rates (and drift) are judged only over at least this many frames."""
MIN_LATENCY_FRAMES = 20
"""A p95 latency is judged only over at least this many frames."""


class Gate(enum.StrEnum):
    """A health gate, named as its threshold field in `health_gates`."""

    DRIFT = "max_drift_score"
    AGREEMENT = "min_shadow_agreement"
    DEFECT_JUMP = "max_defect_rate_jump"
    ERROR_RATE = "max_error_rate"
    LATENCY = "max_latency_p95_ms"

    @property
    def is_minimum(self) -> bool:
        """True when falling below the threshold breaks the gate (else rising above it)."""
        return self.value.startswith("min_")

    @property
    def min_frames(self) -> int:
        return MIN_LATENCY_FRAMES if self is Gate.LATENCY else MIN_RATE_FRAMES


class Subject(enum.StrEnum):
    """Which model's numbers a gate is judged on."""

    SERVING = "serving"
    CANDIDATE = "candidate"


@dataclass(frozen=True)
class Rule:
    gate: Gate
    subject: Subject
    on_device: bool = False
    """The device judges it over its own recent frames too and rolls back at once."""


_ALWAYS = (Rule(Gate.DRIFT, Subject.SERVING),)
RULES: dict[str | None, tuple[Rule, ...]] = {
    None: (
        *_ALWAYS,
        Rule(Gate.ERROR_RATE, Subject.SERVING),
        Rule(Gate.LATENCY, Subject.SERVING),
    ),
    "shadow": (
        *_ALWAYS,
        Rule(Gate.AGREEMENT, Subject.CANDIDATE),
        Rule(Gate.ERROR_RATE, Subject.SERVING),
        Rule(Gate.LATENCY, Subject.SERVING),
        Rule(Gate.LATENCY, Subject.CANDIDATE, on_device=True),
    ),
    "canary": (
        *_ALWAYS,
        Rule(Gate.AGREEMENT, Subject.CANDIDATE, on_device=True),
        Rule(Gate.DEFECT_JUMP, Subject.CANDIDATE, on_device=True),
        Rule(Gate.ERROR_RATE, Subject.CANDIDATE),
        Rule(Gate.LATENCY, Subject.CANDIDATE, on_device=True),
    ),
}
"""Keyed by the line's candidate stage (None: no candidate)."""


def rules(stage: str | None) -> tuple[Rule, ...]:
    """The gates judged at `stage` (an unknown stage judges what a line without candidate does)."""
    return RULES.get(stage, RULES[None])


def on_device(stage: str | None) -> frozenset[Gate]:
    """The gates the device itself judges on its candidate at `stage`."""
    return frozenset(r.gate for r in rules(stage) if r.on_device)
