"""The agent's snapshot for the planner: what the engine serves, what the store holds, what
the state says, and the spools on disk, as one `Observed` value.

The only place the loop looks at the world before planning; the planner itself reads nothing
else, so a tick is `plan(snapshot(agent))` and then the executors.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from edge_puller.observed import Observed, Running, SpoolView
from edge_puller.spool import peek, spooled_lines

if TYPE_CHECKING:
    from edge_puller.agent import Agent


def snapshot(agent: Agent) -> Observed:
    running = {}
    for key, models in agent.engine.lines().items():
        candidate = models.candidate
        running[key] = Running(
            serving=models.serving.spec.sha256,
            standby=models.standby.spec.sha256 if models.standby else None,
            candidate=candidate.spec.sha256 if candidate else None,
            stage=models.stage,
            canary_fraction=models.canary_fraction,
        )
    parts = {}
    for entry in agent.store.root.glob("*.part"):
        parts[entry.name.removesuffix(".part")] = entry.stat().st_size
    return Observed(
        target=agent.state.target,
        active=agent.state.active,
        stored=agent.store.present(),
        partial=parts,
        loaded=agent.cache.loaded(),
        running=running,
        failures=agent.state.failures,
        applied_generation=agent.state.applied_generation,
        reported=agent.state.reported,
        spools=_spool_views(agent),
        now=time.time(),
    )


def _spool_views(agent: Agent) -> dict[str, SpoolView]:
    """Spool folders on disk; frames are counted only for lines no longer served."""
    target = agent.state.target
    served = set(target.lines) if target else set()
    with agent.lock:
        loaded = dict(agent.spools)
    views = {}
    for key, folder in spooled_lines(agent.state_dir / "spool").items():
        spool = loaded.get(key)
        if spool is None:
            pending, retired_at = peek(folder) if key not in served else (0, None)
            views[key] = SpoolView(pending, retired_at)
        else:
            pending = spool.pending() if key not in served else 0
            views[key] = SpoolView(pending, spool.counters.retired_at, loaded=True)
    return views
