"""Trainer test data: three versions of a small taxonomy and decodable frames (PNG bytes)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from linefleet_core.taxonomy import Taxonomy


def _tax(version: int, classes: list[str], migration: list[dict[str, Any]]) -> Taxonomy:
    return Taxonomy.model_validate(
        {
            "kind": "Taxonomy",
            "name": "surface-defects",
            "version": version,
            "classes": [{"id": c, "definition": c, "severity": "minor"} for c in classes],
            "migration": migration,
        }
    )


def taxonomies() -> dict[str, Taxonomy]:
    """v1 -> v2: split contamination into dust|oil, rename spot to pit.
    v2 -> v3: merge dust+oil into particle, deprecate pit, add dent."""
    v1 = _tax(1, ["ok", "scratch", "contamination", "spot"], [])
    v2 = _tax(
        2,
        ["ok", "scratch", "dust", "oil", "pit"],
        [{"split": "contamination", "into": ["dust", "oil"]}, {"rename": "spot", "to": "pit"}],
    )
    v3 = _tax(
        3,
        ["ok", "scratch", "particle", "dent"],
        [{"merge": ["dust", "oil"], "into": "particle"}, {"deprecate": "pit"}, {"add": "dent"}],
    )
    return {t.ref: t for t in (v1, v2, v3)}


def png(seed: int, size: int = 32) -> bytes:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return bytes(buf)
