"""What the planner returns: the steps between what the device has and what it should run.

Frozen values, one class per kind of step; `edge_puller/executor.py` has one function per
kind. A plan lists them in the order they must run (see `edge_puller/planner.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_puller.state import ActiveLine
from edge_puller.target import ModelSpec
from linefleet_core.fleet import HealthGates


@dataclass(frozen=True)
class Resume:
    """Serve what the local state says is active (after a restart); no state change."""

    line: str
    active: ActiveLine


@dataclass(frozen=True)
class Download:
    model: ModelSpec


@dataclass(frozen=True)
class Verify:
    model: ModelSpec
    resumed: bool


@dataclass(frozen=True)
class LoadAndSmokeTest:
    model: ModelSpec


@dataclass(frozen=True)
class Activate:
    """Persist the line's new A/B assignment, then switch the engine to it."""

    line: str
    active: ActiveLine
    gates: HealthGates


@dataclass(frozen=True)
class MarkApplied:
    generation: int


@dataclass(frozen=True)
class Retire:
    line: str


@dataclass(frozen=True)
class MarkSpool:
    """Mark a line's spool retired (loaded so its frames keep uploading), or served again."""

    line: str
    retired: bool


@dataclass(frozen=True)
class DeleteSpool:
    """Delete a retired line's spool: drained (`left` 0) or past the grace period."""

    line: str
    left: int


@dataclass(frozen=True)
class Unload:
    sha256: str


@dataclass(frozen=True)
class Prune:
    keep: frozenset[str]


@dataclass(frozen=True)
class Report:
    """Publish a fresh report (through the outbox); it records what it reported."""


@dataclass(frozen=True)
class Wait:
    reason: str


Step = (
    Resume
    | Download
    | Verify
    | LoadAndSmokeTest
    | Activate
    | MarkApplied
    | Retire
    | MarkSpool
    | DeleteSpool
    | Unload
    | Prune
    | Report
    | Wait
)


def model_of(step: Step) -> str | None:
    """The sha256 of the model a staging step works on (a failure there fails that model)."""
    if isinstance(step, Download | Verify | LoadAndSmokeTest):
        return step.model.sha256
    return None
