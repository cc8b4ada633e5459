"""Render one labelled frame in memory: surface, defect, then the line's camera.

    rng = frame_rng(seed, profile, seq)        # or any numpy Generator
    image = render_frame(profile, "scratch", rng, size=128)   # uint8 BGR [128, 128, 3]

`render` also returns the truth: what was painted (`contamination` is dust or oil; an
unknown class is a generic `blob`), and the defect's bounding box in the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from factory_sim.defects import OK, paint
from factory_sim.nuisance import Box, capture
from factory_sim.profiles import LineProfile, stable_key
from factory_sim.surfaces import Array, render_surface

MIN_SIZE, MAX_SIZE = 32, 1024
MARK_THRESHOLD = 0.03
"""A pixel belongs to the defect where painting changed it by more than this (of full scale)."""


@dataclass(frozen=True)
class Rendered:
    image: Array  # uint8 BGR [size, size, 3]
    truth: str
    box: Box | None = None
    """The defect's bounding box in the frame (x0, y0, x1, y1; None for `ok`)."""


def frame_rng(seed: int, profile: LineProfile, seq: int) -> np.random.Generator:
    """The generator for frame `seq` of a line: independent of every other frame."""
    keys = (stable_key(profile.key), stable_key(profile.camera), seq)
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=keys))


def render(profile: LineProfile, cls: str, rng: np.random.Generator, size: int = 128) -> Rendered:
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size must be in [{MIN_SIZE}, {MAX_SIZE}], got {size}")
    surface = render_surface(rng, size, profile.supplier)
    clean = surface.copy()
    truth = paint(surface, cls, rng)
    marks = None
    if truth != OK:
        marks = (np.abs(surface - clean).max(axis=2) > MARK_THRESHOLD).astype(np.float32)
    shot = capture(surface, profile, rng, marks)
    return Rendered(shot.image, truth, shot.box)


def render_frame(
    profile: LineProfile, cls: str, rng: np.random.Generator, size: int = 128
) -> Array:
    """A frame of class `cls` as this line's camera sees it (uint8 BGR, `size` x `size`)."""
    return render(profile, cls, rng, size).image
