"""Input statistics of frames and the drift score: the contract between trainer and edge.

The trainer stores the mean of these statistics over a model's training frames as the model
version's `reference_stats`; the edge computes the same statistics on the frames it sees and
reports how far they drifted. Both sides must compute them identically, so the formulas live
here, once (docs/frame-stats.md explains them). NumPy and OpenCV are imported on use: they come
with the edge and trainer extras, not with the base install.
"""

from __future__ import annotations

from typing import Any

STAT_KEYS = ("brightness", "contrast", "sharpness", "red_balance", "blue_balance")
MAX_WIDTH = 160
"""Frames wider than this are downscaled (INTER_AREA) before the statistics are taken."""


def frame_stats(bgr: Any) -> dict[str, float]:
    """The statistics of one uint8 BGR frame (docs/frame-stats.md)."""
    import cv2
    import numpy as np

    height, width = bgr.shape[:2]
    if width > MAX_WIDTH:
        size = (MAX_WIDTH, max(1, int(height * MAX_WIDTH / width)))
        bgr = np.asarray(cv2.resize(bgr, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
    blue, green, red = (float(bgr[:, :, c].mean()) for c in range(3))
    green = max(green, 1e-6)
    return {
        "brightness": float(grey.mean()),
        "contrast": float(grey.std()),
        "sharpness": float(cv2.Laplacian(grey, cv2.CV_32F).var()),
        "red_balance": red / green,
        "blue_balance": blue / green,
    }


def drift_score(current: dict[str, float], reference: dict[str, float]) -> float:
    """The largest relative change of any statistic present in both, capped at 1.

    Relative to each statistic's own scale (sharpness is ~0.005, the balances ~1), and the
    largest rather than the mean, so one statistic that moves is not averaged away.
    """
    keys = [k for k in current if k in reference]
    if not keys:
        return 0.0
    return max(
        min(1.0, abs(current[k] - reference[k]) / max(abs(reference[k]), 1e-6)) for k in keys
    )


def _relative_change(current: float, reference: float) -> float:
    return min(1.0, abs(current - reference) / max(abs(reference), 1e-6))
