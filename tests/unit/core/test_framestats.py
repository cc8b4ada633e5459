"""The reference input statistics of docs/frame-stats.md on a frame with known values."""

from __future__ import annotations

import numpy as np
import pytest

from linefleet_core.framestats import frame_stats


def test_statistics_of_a_plain_frame() -> None:
    grey = np.full((40, 200, 3), 128, np.uint8)
    grey[:, :, 2] = 192  # more red
    stats = frame_stats(grey)
    assert stats["contrast"] == pytest.approx(0.0, abs=1e-6)
    assert stats["sharpness"] == pytest.approx(0.0, abs=1e-6)
    assert stats["red_balance"] == pytest.approx(1.5)
    assert stats["blue_balance"] == pytest.approx(1.0)
    assert 0.5 < stats["brightness"] < 0.7
