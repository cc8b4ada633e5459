"""What the planner reads: one snapshot of the device, taken by the agent before each plan.

Plain frozen values, so the planner stays a pure function of them: the local state's view
(target, A/B assignments, failures, the generation applied, what was last reported), the
files in the artifact store, the loaded sessions, what the engine serves, and the spools on
disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_puller.state import ActiveLine, Failure
from edge_puller.target import Target
from linefleet_core.refs import CandidateStage


@dataclass(frozen=True)
class Running:
    """What the engine serves on a line, as sha256s (comparable with `ActiveLine`)."""

    serving: str
    standby: str | None = None
    candidate: str | None = None
    stage: CandidateStage | None = None
    canary_fraction: float = 0.0

    @classmethod
    def of(cls, active: ActiveLine) -> Running | None:
        if active.serving is None:
            return None
        candidate = active.candidate
        return cls(
            serving=active.serving.artifact.sha256,
            standby=active.standby.artifact.sha256 if active.standby else None,
            candidate=candidate.artifact.sha256 if candidate else None,
            stage=candidate.stage if candidate else None,
            canary_fraction=(candidate.canary_fraction or 0.0) if candidate else 0.0,
        )


@dataclass(frozen=True)
class SpoolView:
    """A spool folder on disk: frames waiting, when its line was retired, loaded for upload."""

    pending: int
    retired_at: float | None = None
    loaded: bool = False


@dataclass(frozen=True)
class Observed:
    target: Target | None
    active: dict[str, ActiveLine] = field(default_factory=dict)
    stored: frozenset[str] = frozenset()
    partial: dict[str, int] = field(default_factory=dict)
    loaded: frozenset[str] = frozenset()
    running: dict[str, Running] = field(default_factory=dict)
    failures: dict[str, Failure] = field(default_factory=dict)
    applied_generation: int = 0
    reported: str = ""
    spools: dict[str, SpoolView] = field(default_factory=dict)
    now: float = 0.0
    """Unix time of the observation (for the retired spools' grace period)."""
