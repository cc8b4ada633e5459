"""Frames from the independent synthetic source (`bench/othersource.py`): "foreign" frames that
no factory_sim line has ever produced (other materials, lighting and resolution)."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.othersource import MATERIALS, render


def foreign_frames(
    count: int, *, seed: int, cls: str = "ok", materials: tuple[str, ...] = MATERIALS
) -> list[Any]:
    """`count` BGR uint8 frames (128 px) of `cls`, cycling through `materials` (default: all
    of the source's)."""
    rng = np.random.default_rng(seed)
    return [render(materials[i % len(materials)], cls, rng) for i in range(count)]
