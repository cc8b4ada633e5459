"""A model's `reference_stats`: the mean input statistics of its training frames.

The statistics are the trainer/edge contract in `linefleet_core.framestats`; the edge compares
live frames with these means to report a drift score.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from linefleet_core.framestats import STAT_KEYS, frame_stats


def reference_stats(frames: Iterable[Any]) -> dict[str, float]:
    """The mean of each statistic over `frames` (BGR uint8), rounded for the catalogue."""
    rows = [frame_stats(f) for f in frames]
    if not rows:
        return {}
    return {k: round(float(np.mean([r[k] for r in rows])), 6) for k in STAT_KEYS}
