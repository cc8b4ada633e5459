"""The agent's snapshot for the planner: what the engine serves, what the store holds, what
the state says, and the spools on disk, as one `Observed` value.

The only place the loop looks at the world before planning; the planner itself reads nothing
else, so a tick is `plan(snapshot(parts))` and then the executors. `Observable` names the
parts it reads (the agent has them; so does the executors' `Context`, which extends it).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Protocol

from edge_puller.artifacts import ArtifactStore
from edge_puller.engine import Engine
from edge_puller.observed import Observed, Running, SpoolView
from edge_puller.runtime import ModelCache
from edge_puller.spool import Spool, peek, spooled_lines
from edge_puller.state import LocalState


class Observable(Protocol):
    """The parts of a device a snapshot reads."""

    store: ArtifactStore
    cache: ModelCache
    engine: Engine
    state: LocalState
    state_dir: Path
    spools: dict[str, Spool]
    lock: threading.Lock
    """Guards `spools` (the link uploads from them on its own thread)."""


def snapshot(parts: Observable) -> Observed:
    running = {}
    for key, models in parts.engine.lines().items():
        candidate = models.candidate
        running[key] = Running(
            serving=models.serving.spec.artifact.sha256,
            standby=models.standby.spec.artifact.sha256 if models.standby else None,
            candidate=candidate.spec.artifact.sha256 if candidate else None,
            stage=models.stage,
            canary_fraction=models.canary_fraction,
        )
    state = parts.state
    return Observed(
        target=state.target,
        active=state.active,
        stored=parts.store.present(),
        partial=parts.store.partials(),
        loaded=parts.cache.loaded(),
        running=running,
        failures=state.failures,
        applied_generation=state.applied_generation,
        reported=state.reported,
        spools=_spool_views(parts),
        now=time.time(),
    )


def _spool_views(parts: Observable) -> dict[str, SpoolView]:
    """Spool folders on disk; frames are counted only for lines no longer served."""
    target = parts.state.target
    served = set(target.lines) if target else set()
    with parts.lock:
        loaded = dict(parts.spools)
    views = {}
    for key, folder in spooled_lines(parts.state_dir / "spool").items():
        spool = loaded.get(key)
        if spool is None:
            pending, retired_at = peek(folder) if key not in served else (0, None)
            views[key] = SpoolView(pending, retired_at)
        else:
            pending = spool.pending() if key not in served else 0
            views[key] = SpoolView(pending, spool.counters.retired_at, loaded=True)
    return views
