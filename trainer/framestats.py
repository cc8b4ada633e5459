"""Input statistics of frames, as `docs/frame-stats.md` defines them (the edge's drift contract).

The trainer stores their mean over the training frames as a model version's
`reference_stats`; the edge computes the same numbers on live frames and reports a drift
score. This is an independent implementation of that page (the trainer may not import the
edge).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

STAT_KEYS = ("brightness", "contrast", "sharpness", "red_balance", "blue_balance")
MAX_WIDTH = 160


def frame_stats(bgr: Any) -> dict[str, float]:
    import cv2

    h, w = bgr.shape[:2]
    if w > MAX_WIDTH:
        bgr = cv2.resize(
            bgr, (MAX_WIDTH, max(1, int(h * MAX_WIDTH / w))), interpolation=cv2.INTER_AREA
        )
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255
    blue, green, red = (float(bgr[:, :, c].mean()) for c in range(3))
    green = max(green, 1e-6)
    return {
        "brightness": float(grey.mean()),
        "contrast": float(grey.std()),
        "sharpness": float(cv2.Laplacian(grey, cv2.CV_32F).var()),
        "red_balance": red / green,
        "blue_balance": blue / green,
    }


def reference_stats(frames: Iterable[Any]) -> dict[str, float]:
    """The mean of each statistic over `frames` (BGR uint8), rounded for the catalogue."""
    rows = [frame_stats(f) for f in frames]
    if not rows:
        return {}
    return {k: round(float(np.mean([r[k] for r in rows])), 6) for k in STAT_KEYS}
