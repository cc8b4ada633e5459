"""Frame input statistics, as defined in `docs/frame-stats.md` (reference implementation).

The edge and the trainer each implement the same formulas; this copy lets the generator's
tests check that drift events move the statistics an edge device reports.
"""

from __future__ import annotations

import cv2
import numpy as np

from factory_sim.surfaces import Array

STATS_WIDTH = 160
STAT_KEYS = ("brightness", "contrast", "sharpness", "red_balance", "blue_balance")


def frame_stats(img: Array) -> dict[str, float]:
    """Statistics of one uint8 BGR frame: brightness, contrast, sharpness, colour balance."""
    height, width = img.shape[:2]
    if width > STATS_WIDTH:
        size = (STATS_WIDTH, max(1, int(height * STATS_WIDTH / width)))
        img = np.asarray(cv2.resize(img, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
    blue, green, red = (float(img[:, :, i].mean()) for i in range(3))
    green = max(green, 1e-6)
    return {
        "brightness": float(grey.mean()),
        "contrast": float(grey.std()),
        "sharpness": float(cv2.Laplacian(grey, cv2.CV_32F).var()),
        "red_balance": red / green,
        "blue_balance": blue / green,
    }
