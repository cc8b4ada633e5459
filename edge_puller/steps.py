"""The steps the agent takes: what the planner returns, and what arrived between two ticks.

Frozen values, one class per kind of step; `edge_puller/executor.py` has one function per
kind, and only those functions change the local state. A plan lists its steps in the order they
must run (see `edge_puller/planner.py`). Three kinds do not come from the planner but from
what happened since the last look (`edge_puller/arrivals.py`): `HandRollback` (an operator's
request), `RecordFailure` (a model the engine dropped, or a staging step that failed for good).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_puller.handrollback import Request
from edge_puller.state import ActiveLine
from linefleet_core.wire import HealthGatesSpec, ModelSpec


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
    gates: HealthGatesSpec


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


@dataclass(frozen=True)
class HandRollback:
    """Apply (or refuse) an operator's rollback request left in `requests/`."""

    path: Path
    request: Request | None
    """None: the request could not be read (it is discarded with that reason)."""


@dataclass(frozen=True)
class RecordFailure:
    """Record a model as failed for this generation and say so: the next plan routes around it."""

    sha256: str
    reason: str
    message: str
    event: str
    """The event's type (`fallback`, `download-failed`)."""
    line: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


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
    | HandRollback
    | RecordFailure
)
