"""Defect painters: each draws one kind of visible defect onto a product surface.

A painter takes a float32 BGR surface in [0, 1] (modified in place) and an `rng`. Sizes are
relative to the surface, so a scratch looks the same at 128 and 256 px. `painter_for(class)`
maps a taxonomy class id to a painter, including the usual synonyms (`discoloration`,
`colour-mismatch`, `stain`...); `contamination` paints dust or oil (the truth is recorded);
an unknown class gets a generic blob and is reported by the caller as a warning.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from factory_sim.surfaces import Array, Image, smooth_noise

Painter = Callable[[Image, np.random.Generator], None]
OK = "ok"


def _point(rng: np.random.Generator, size: int, margin: float = 0.15) -> Array:
    return rng.uniform(margin * size, (1 - margin) * size, 2)


def _add(img: Image, mask: Array, delta: Array | float) -> None:
    img += mask[:, :, None] * np.asarray(delta, dtype=np.float32)
    np.clip(img, 0.0, 1.0, out=img)


def _soft_blob(rng: np.random.Generator, size: int, radius: float, lobes: int) -> Array:
    """An irregular soft-edged blob mask in [0, 1], made of a few overlapping ellipses."""
    mask = np.zeros((size, size), np.float32)
    centre = _point(rng, size, 0.25)
    for _ in range(lobes):
        c = centre + rng.normal(0, radius * 0.5, 2)
        axes = (int(radius * rng.uniform(0.5, 1.0)) + 1, int(radius * rng.uniform(0.3, 0.8)) + 1)
        angle = float(rng.uniform(0, 180))
        cv2.ellipse(mask, (int(c[0]), int(c[1])), axes, angle, 0, 360, 1.0, -1, cv2.LINE_AA)
    return cv2.GaussianBlur(mask, (0, 0), max(1.0, radius * 0.25))


def scratch(img: Image, rng: np.random.Generator) -> None:
    """A thin bright (or dark) line, slightly curved, 25-60% of the surface long."""
    size = img.shape[0]
    start = _point(rng, size)
    to_centre = np.arctan2(size / 2 - start[1], size / 2 - start[0])
    angle = to_centre + rng.uniform(-1.0, 1.0)  # across the surface, not off its edge
    length = rng.uniform(0.25, 0.6) * size
    direction = np.array([np.cos(angle), np.sin(angle)])
    bend = rng.normal(0, 0.04 * size) * np.array([-direction[1], direction[0]])
    pts = np.array(
        [start, start + direction * length / 2 + bend, start + direction * length], np.float64
    )
    mask = np.zeros((size, size), np.float32)
    thickness = max(1, round(size / 128))
    cv2.polylines(mask, [np.round(pts).astype(np.int32)], False, 1.0, thickness, cv2.LINE_AA)
    sign = 1.0 if rng.random() < 0.7 else -1.0
    _add(img, mask, sign * rng.uniform(0.25, 0.4))


def crack(img: Image, rng: np.random.Generator) -> None:
    """A dark jagged line (a random walk) with an occasional short branch."""
    size = img.shape[0]
    mask = np.zeros((size, size), np.float32)
    heading = rng.uniform(0, 2 * np.pi)
    pos = _point(rng, size, 0.25)
    pts = [pos.copy()]
    step = size * 0.04
    for _ in range(int(rng.integers(8, 14))):
        heading += rng.normal(0, 0.6)
        pos = np.clip(pos + step * np.array([np.cos(heading), np.sin(heading)]), 1, size - 2)
        pts.append(pos.copy())
    thickness = max(1, round(size / 128))
    cv2.polylines(mask, [np.round(pts).astype(np.int32)], False, 1.0, thickness, cv2.LINE_AA)
    branch_from = pts[len(pts) // 2]
    branch_dir = heading + rng.choice([-1.0, 1.0]) * 1.0
    tip = branch_from + size * 0.12 * np.array([np.cos(branch_dir), np.sin(branch_dir)])
    cv2.line(
        mask, tuple(np.round(branch_from).astype(int)), tuple(np.round(tip).astype(int)), 0.8, 1
    )
    _add(img, mask, -rng.uniform(0.35, 0.55))


def dent(img: Image, rng: np.random.Generator) -> None:
    """A shallow ellipse lit from one side: bright on one rim, shaded on the other."""
    size = img.shape[0]
    mask: Array = np.zeros((size, size), np.float32)
    c = _point(rng, size, 0.25)
    axes = (int(size * rng.uniform(0.08, 0.16)), int(size * rng.uniform(0.06, 0.12)))
    cv2.ellipse(mask, (int(c[0]), int(c[1])), axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), max(1.5, axes[1] * 0.4))
    light = rng.uniform(0, 2 * np.pi)
    gx = cv2.Sobel(mask, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(mask, cv2.CV_32F, 0, 1, ksize=3)
    shading = gx * np.cos(light) + gy * np.sin(light)
    shading /= max(float(np.abs(shading).max()), 1e-6)
    _add(img, shading, rng.uniform(0.18, 0.3))


def dust(img: Image, rng: np.random.Generator) -> None:
    """A cluster of small bright-grey (sometimes dark) speckles."""
    size = img.shape[0]
    mask = np.zeros((size, size), np.float32)
    centre = _point(rng, size, 0.2)
    spread = size * rng.uniform(0.08, 0.2)
    for _ in range(int(rng.integers(12, 35))):
        p = np.clip(centre + rng.normal(0, spread, 2), 0, size - 1)
        r = max(1, round(rng.uniform(0.5, 1.6) * size / 128))
        cv2.circle(mask, (int(p[0]), int(p[1])), r, float(rng.uniform(0.6, 1.0)), -1, cv2.LINE_AA)
    grey = np.float32(rng.uniform(0.75, 0.9))
    mask = np.minimum(mask, 1.0)
    if rng.random() < 0.75:  # light dust over the surface: blend towards grey
        img += mask[:, :, None] * (grey - img) * 0.8
    else:
        _add(img, mask, -0.3)


def oil(img: Image, rng: np.random.Generator) -> None:
    """A dark, slightly brown, glossy smudge with a thin specular highlight."""
    size = img.shape[0]
    mask = _soft_blob(rng, size, size * rng.uniform(0.08, 0.15), int(rng.integers(2, 5)))
    darken = rng.uniform(0.35, 0.55)
    tint = np.array([0.85, 0.95, 1.0], np.float32)  # BGR: a little less blue
    img *= 1.0 - mask[:, :, None] * darken * (2.0 - tint)
    gloss = np.clip(mask - 0.6, 0, 1) * smooth_noise(rng, size, size * 0.02).clip(0, None)
    _add(img, gloss, 0.15)


def discolouration(img: Image, rng: np.random.Generator) -> None:
    """A soft patch whose hue is shifted (yellowing, a wrong paint batch...)."""
    size = img.shape[0]
    mask = _soft_blob(rng, size, size * rng.uniform(0.12, 0.22), int(rng.integers(2, 4)))
    shift = rng.normal(0, 1, 3)
    shift -= shift.mean()
    shift = shift / max(float(np.abs(shift).max()), 1e-6) * rng.uniform(0.07, 0.13)
    _add(img, mask, shift.astype(np.float32))


def blob(img: Image, rng: np.random.Generator) -> None:
    """The generic defect for a class the generator does not know: a soft blotch."""
    size = img.shape[0]
    mask = _soft_blob(rng, size, size * rng.uniform(0.08, 0.15), 3)
    _add(img, mask, rng.choice([-1.0, 1.0]) * rng.uniform(0.15, 0.3))


PAINTERS: dict[str, Painter] = {
    "scratch": scratch,
    "crack": crack,
    "dent": dent,
    "dust": dust,
    "oil": oil,
    "discolouration": discolouration,
    "blob": blob,
}

ALIASES: dict[str, str] = {
    "scratches": "scratch",
    "cracks": "crack",
    "dents": "dent",
    "discoloration": "discolouration",
    "colour-mismatch": "discolouration",
    "color-mismatch": "discolouration",
    "stain": "discolouration",
    "hue-shift": "discolouration",
    "particle": "dust",
    "grease": "oil",
}


def painter_for(cls: str) -> str | None:
    """The painter name for a class id; None for `ok`; `blob` if the class is unknown."""
    if cls == OK:
        return None
    if cls == "contamination":
        return "contamination"
    name = ALIASES.get(cls, cls)
    return name if name in PAINTERS else "blob"


def is_known(cls: str) -> bool:
    return cls in (OK, "contamination") or ALIASES.get(cls, cls) in PAINTERS


def paint(img: Image, cls: str, rng: np.random.Generator) -> str:
    """Paint the defect of class `cls` onto `img`; return what was actually painted (truth)."""
    name = painter_for(cls)
    if name is None:
        return OK
    if name == "contamination":
        name = "dust" if rng.random() < 0.5 else "oil"
    PAINTERS[name](img, rng)
    return name
