"""A second, independent source of labelled surface frames, written for the benchmarks only.

Nothing here comes from `factory_sim`: other materials (brushed metal, woven fabric, speckled
polymer), other lighting (a directional gradient, a vignette, a colour cast, a per-frame gain),
other defect shapes (curved hairline scratches, clusters of particles, shaded dents) and a
higher resolution (128 px), so the trainer's features cannot have been tuned to it.

    write_tree(Path("out"), lines=3, frames_per_line=400, seed=5)
    # out/<site>/<line>/<camera>/<class>/<n>.png   (import: labels import-folder --levels ...)

Classes are those of `surface-defects@3`: ok, scratch, particle, dent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

CLASSES = ("ok", "scratch", "particle", "dent")
TAXONOMY = "surface-defects@3"
LEVELS = "site/line/camera/class"
MATERIALS = ("brushed", "woven", "speckled")


def _noise(rng: np.random.Generator, size: int, scale: int) -> np.ndarray:
    small = rng.standard_normal((max(2, size // scale), max(2, size // scale))).astype(np.float32)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


def _texture(material: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """A grey texture around 0.5 (float32 [size, size])."""
    if material == "brushed":
        streaks = rng.standard_normal((size, 1)).astype(np.float32)
        base: np.ndarray = np.repeat(streaks, size, axis=1)
        base = cv2.GaussianBlur(base, (1, 9), 0) * 0.06 + _noise(rng, size, 16) * 0.03
        angle = rng.uniform(-10, 10)
        matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, 1.0)
        base = cv2.warpAffine(base, matrix, (size, size), borderMode=cv2.BORDER_REFLECT)
    elif material == "woven":
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        period = rng.uniform(5, 8)
        phase = rng.uniform(0, 2 * math.pi, 2)
        base = (
            0.05
            * np.sin(2 * math.pi * xx / period + phase[0])
            * np.sin(2 * math.pi * yy / period + phase[1])
        )
        base += _noise(rng, size, 8) * 0.02
    else:
        base = _noise(rng, size, 2) * 0.05 + _noise(rng, size, 6) * 0.04
    return (0.5 + base).astype(np.float32)


def _tint(material: str) -> np.ndarray:
    return {
        "brushed": np.array([0.85, 0.88, 0.95], np.float32),  # BGR: cool steel
        "woven": np.array([0.62, 0.78, 0.92], np.float32),  # beige
        "speckled": np.array([0.45, 0.7, 0.5], np.float32),  # green polymer
    }[material]


def _scratch(img: np.ndarray, rng: np.random.Generator) -> None:
    size = img.shape[0]
    p0 = rng.uniform(0.15, 0.85, 2) * size
    angle = rng.uniform(0, math.pi)
    length = rng.uniform(0.15, 0.45) * size
    bend = rng.uniform(-0.3, 0.3) * length
    pts = []
    for t in np.linspace(0, 1, 24):
        x = p0[0] + math.cos(angle) * length * t - math.sin(angle) * bend * 4 * t * (1 - t)
        y = p0[1] + math.sin(angle) * length * t + math.cos(angle) * bend * 4 * t * (1 - t)
        pts.append((x, y))
    mask = np.zeros(img.shape[:2], np.float32)
    poly = np.array(pts, np.int32).reshape(-1, 1, 2)
    cv2.polylines(mask, [poly], False, 1.0, thickness=1, lineType=cv2.LINE_AA)
    sign = 1 if rng.random() < 0.6 else -1
    img += (sign * rng.uniform(0.12, 0.25) * mask)[:, :, None]


def _particles(img: np.ndarray, rng: np.random.Generator) -> None:
    size = img.shape[0]
    centre = rng.uniform(0.2, 0.8, 2) * size
    colour = rng.uniform(-0.35, -0.15, 3) * np.array(rng.uniform(0.6, 1.0, 3), np.float32)
    for _ in range(int(rng.integers(2, 7))):
        c = centre + rng.normal(0, size * 0.04, 2)
        r = rng.uniform(0.8, 2.2) * size / 128
        mask = np.zeros(img.shape[:2], np.float32)
        cv2.circle(mask, (int(c[0]), int(c[1])), max(1, round(r)), 1.0, -1, cv2.LINE_AA)
        img += mask[:, :, None] * colour


def _dent(img: np.ndarray, rng: np.random.Generator) -> None:
    size = img.shape[0]
    cx, cy = rng.uniform(0.25, 0.75, 2) * size
    rx = rng.uniform(0.05, 0.11) * size
    ry = rx * rng.uniform(0.6, 1.0)
    theta = rng.uniform(0, math.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    u = ((xx - cx) * math.cos(theta) + (yy - cy) * math.sin(theta)) / rx
    v = (-(xx - cx) * math.sin(theta) + (yy - cy) * math.cos(theta)) / ry
    bowl = np.exp(-(u * u + v * v) * 1.5)
    light = rng.uniform(0, 2 * math.pi)
    shading = (np.cos(light) * u + np.sin(light) * v) * bowl  # lit rim, shadowed rim
    img += (rng.uniform(0.2, 0.32) * shading)[:, :, None]


def render(material: str, cls: str, rng: np.random.Generator, size: int = 128) -> np.ndarray:
    """One BGR uint8 frame of `material` showing `cls`."""
    grey = _texture(material, rng, size)
    img = grey[:, :, None] * _tint(material)[None, None, :] * 2 * 0.8
    if cls == "scratch":
        _scratch(img, rng)
    elif cls == "particle":
        _particles(img, rng)
    elif cls == "dent":
        _dent(img, rng)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    direction = rng.uniform(0, 2 * math.pi)
    gradient = 1 + rng.uniform(0.1, 0.35) * (math.cos(direction) * xx + math.sin(direction) * yy)
    vignette = 1 - rng.uniform(0.1, 0.4) * (xx * xx + yy * yy) * 2
    cast = rng.uniform(0.9, 1.1, 3).astype(np.float32)
    gain = rng.uniform(0.7, 1.25)
    img = img * (gradient * vignette)[:, :, None] * cast * gain
    img += rng.normal(0, 0.012, img.shape).astype(np.float32)
    return np.clip(img * 255, 0, 255).astype(np.uint8)


def write_tree(
    out: Path, lines: int = 3, frames_per_line: int = 400, seed: int | Sequence[int] = 5,
    size: int = 128, defect_rate: float = 0.5,
) -> list[str]:  # fmt: skip
    """Write `out/<site>/<line>/<camera>/<class>/<n>.png`; return the `site/line` keys.

    `seed` is numpy's seed: an int, or a sequence such as `(5, 1)` for a draw independent of
    seed 5's (numpy's SeedSequence), with the same lines, materials and classes."""
    rng = np.random.default_rng(seed)
    keys = []
    for n in range(lines):
        material = MATERIALS[n % len(MATERIALS)]
        site, line = "toledo", f"line-{n + 1}"
        keys.append(f"{site}/{line}")
        for i in range(frames_per_line):
            cls = "ok" if rng.random() >= defect_rate else str(rng.choice(CLASSES[1:]))
            folder = out / site / line / "cam-1" / cls
            folder.mkdir(parents=True, exist_ok=True)
            ok, buf = cv2.imencode(".png", render(material, cls, rng, size))
            assert ok
            (folder / f"{i:05d}.png").write_bytes(bytes(buf))
    return keys
