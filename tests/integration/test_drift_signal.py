"""Every kind of drift the synthetic factory injects shows in the edge's drift score.

The edge compares the input statistics of the frames it sees with the serving model's
`reference_stats` (docs/frame-stats.md). This runs the edge's real statistics and score on
frames from the synthetic factory: a line that did not change stays well under the default
health gate (`max_drift_score` 0.3); each drift event crosses it.
"""

from __future__ import annotations

import numpy as np
import pytest

from factory_sim.drift import profile_at
from factory_sim.profiles import DRIFT_KINDS, DriftEvent, LineProfile, line_profiles
from factory_sim.render import frame_rng, render_frame
from linefleet_core.fleet import HealthGates
from linefleet_core.framestats import STAT_KEYS, drift_score, frame_stats

GATE = HealthGates().max_drift_score


def mean_stats(profile: LineProfile, base: LineProfile, seqs: range) -> dict[str, float]:
    stats = [frame_stats(render_frame(profile, "ok", frame_rng(1, base, i), 96)) for i in seqs]
    return {k: float(np.mean([s[k] for s in stats])) for k in STAT_KEYS}


@pytest.mark.parametrize("kind", DRIFT_KINDS)
def test_each_drift_kind_crosses_the_default_gate_and_no_drift_does_not(kind: str) -> None:
    base = line_profiles(1, 1, seed=1)[0]
    after, _ = profile_at(base, [DriftEvent(kind, base.key, 0)], 0, seed=1)  # type: ignore[arg-type]
    reference = mean_stats(base, base, range(16))
    unchanged = drift_score(mean_stats(base, base, range(16, 32)), reference)
    drifted = drift_score(mean_stats(after, base, range(16, 32)), reference)
    assert unchanged < GATE / 2
    assert drifted > GATE
