"""What arrived between two ticks, as steps: an operator's rollback requests, the models the
engine dropped while serving, and a staging step that failed for good.

The agent runs these through the same executors as a plan's steps (`edge_puller/executor.py`),
so the local state changes in one place only. Reading the requests folder is the only thing
done here; turning an arrival into a step is pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from edge_puller import handrollback
from edge_puller.engine import EngineEvent
from edge_puller.steps import Download, HandRollback, LoadAndSmokeTest, RecordFailure, Step, Verify
from linefleet_core.errors import PermanentError


def arrived(state_dir: Path, events: Iterable[EngineEvent]) -> list[Step]:
    """Rollbacks by hand left for the running agent (`linefleet edge rollback`), in the order
    they were named, then the engine's fallbacks in the order they happened."""
    steps: list[Step] = [HandRollback(path, req) for path, req in handrollback.pending(state_dir)]
    steps += [fell_back(event) for event in events]
    return steps


def fell_back(event: EngineEvent) -> RecordFailure:
    """The engine dropped a model while serving (it kept the incumbent): fail it for good."""
    return RecordFailure(
        event.sha256,
        event.reason,
        event.message,
        event.type,
        line=event.line,
        details={"model": event.model},
    )


def failed(step: Step, exc: PermanentError) -> RecordFailure | None:
    """A staging step failed for good: its model is failed for this generation (None: the
    step works on no model, so there is nothing to route around)."""
    if not isinstance(step, Download | Verify | LoadAndSmokeTest):
        return None
    sha = step.model.artifact.sha256
    return RecordFailure(
        sha,
        getattr(exc, "reason", "failed"),
        str(exc),
        "fallback" if isinstance(step, LoadAndSmokeTest) else "download-failed",
        details={"model": step.model.ref, "sha256": sha},
    )
