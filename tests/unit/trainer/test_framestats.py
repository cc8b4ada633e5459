from __future__ import annotations

import numpy as np
import pytest

from linefleet_core.framestats import frame_stats
from trainer.framestats import reference_stats


def test_stats_of_a_flat_frame_follow_the_documented_formulas() -> None:
    frame = np.zeros((40, 60, 3), np.uint8)
    frame[:, :] = (50, 100, 200)  # BGR
    stats = frame_stats(frame)
    grey = (0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255
    assert stats["brightness"] == pytest.approx(grey, abs=2 / 255)
    assert stats["contrast"] == pytest.approx(0.0, abs=1e-6)
    assert stats["sharpness"] == pytest.approx(0.0, abs=1e-9)
    assert stats["red_balance"] == pytest.approx(2.0)
    assert stats["blue_balance"] == pytest.approx(0.5)


def test_wide_frames_are_downscaled_first_and_reference_is_the_mean() -> None:
    rng = np.random.default_rng(0)
    wide = rng.integers(0, 255, (100, 640, 3), dtype=np.uint8)
    small = frame_stats(wide)
    assert small["sharpness"] > 0
    ref = reference_stats([wide, np.full((10, 10, 3), 255, np.uint8)])
    assert ref["brightness"] == pytest.approx((small["brightness"] + 1.0) / 2, abs=1e-5)
    assert reference_stats([]) == {}
