"""Drift events move the input statistics an edge device reports (docs/frame-stats.md)."""

from __future__ import annotations

import numpy as np
import pytest

from factory_sim.drift import profile_at
from factory_sim.profiles import DRIFT_KINDS, DriftEvent, LineProfile, line_profiles
from factory_sim.render import frame_rng, render_frame
from factory_sim.stats import STAT_KEYS, frame_stats


def _drift_score(current: dict[str, float], reference: dict[str, float]) -> float:
    parts = [
        min(1.0, abs(current[k] - reference[k]) / max(abs(reference[k]), 0.05)) for k in STAT_KEYS
    ]
    return sum(parts) / len(parts)


def _mean_stats(profile: LineProfile, base: LineProfile, seqs: range) -> dict[str, float]:
    stats = [frame_stats(render_frame(profile, "ok", frame_rng(1, base, i), 96)) for i in seqs]
    return {k: float(np.mean([s[k] for s in stats])) for k in STAT_KEYS}


def test_statistics_of_a_plain_frame() -> None:
    grey = np.full((40, 200, 3), 128, np.uint8)
    grey[:, :, 2] = 192  # more red
    stats = frame_stats(grey)
    assert stats["contrast"] == pytest.approx(0.0, abs=1e-6)
    assert stats["sharpness"] == pytest.approx(0.0, abs=1e-6)
    assert stats["red_balance"] == pytest.approx(1.5)
    assert stats["blue_balance"] == pytest.approx(1.0)
    assert 0.5 < stats["brightness"] < 0.7


@pytest.mark.parametrize("kind", DRIFT_KINDS)
def test_every_drift_kind_shows_in_the_drift_score(kind: str) -> None:
    base = line_profiles(1, 1, seed=1)[0]
    after, _ = profile_at(base, [DriftEvent(kind, base.key, 0)], 0, seed=1)  # type: ignore[arg-type]
    reference = _mean_stats(base, base, range(12))
    same = _drift_score(_mean_stats(base, base, range(12, 24)), reference)
    drifted = _drift_score(_mean_stats(after, base, range(12, 24)), reference)
    assert same < 0.03
    if kind == "camera_bump":  # defocus: sharpness falls (too small for the score's 0.05 floor)
        assert _mean_stats(after, base, range(12, 24))["sharpness"] < 0.7 * reference["sharpness"]
    else:
        assert drifted > 0.1
