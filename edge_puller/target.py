"""What the device should run: the verified desired state, typed as the wire declares it.

The edge declares no model, candidate, gates or telemetry types of its own: a line is the wire's
`LineSpec`, a model its `ModelSpec` (a candidate is a `CandidateSpec`, the model with its
`stage`), a line's gates and telemetry are its `HealthGatesSpec` and `TelemetrySpec`. `Target`
only adds what the device derives from the document: its lines by key, its models by sha256.
`state.json` keeps the document as received; the `Target` is derived from it again on start
(`edge_puller/state.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from linefleet_core.fleet import HealthGates, TelemetryPolicy
from linefleet_core.wire import (
    DesiredState,
    HealthGatesSpec,
    LineSpec,
    ModelSpec,
    TelemetrySpec,
)

Roi = tuple[int, int, int, int]
"""x, y, width, height in frame pixels."""


@dataclass(frozen=True)
class Target:
    """The desired state the device holds, with its lines by key (derived once)."""

    document: DesiredState
    lines: dict[str, LineSpec] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lines", {line.line: line for line in self.document.spec.lines})

    def models(self) -> dict[str, ModelSpec]:
        """Every model any line needs, by sha256."""
        return {m.artifact.sha256: m for line in self.lines.values() for m in line.models()}


def camera_ids(line: LineSpec) -> tuple[str, ...]:
    return tuple(c.id for c in line.cameras)


DEFAULT_GATES = HealthGatesSpec.model_validate(
    HealthGates().model_dump(exclude={"max_field_escape_rate"})
)
"""The fleet's default gates, for a line the desired state no longer names (still resumed)."""

DEFAULT_TELEMETRY = TelemetrySpec.model_validate(TelemetryPolicy().model_dump(exclude_none=True))
"""The fleet's default telemetry, for the spool of a line the desired state no longer names."""
