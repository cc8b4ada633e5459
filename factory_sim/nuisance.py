"""The camera's view of a product: orientation, conveyor, perspective, lighting, blur, noise.

`capture(product, profile, rng)` turns a product surface (float32 BGR in [0, 1]) into the
frame the line's camera records (uint8 BGR): oriented, placed on the belt with a keystone
warp and a soft shadow, lit (colour temperature, intensity, gradient, vignetting), blurred
(motion along the belt, defocus) and noisy. Everything line-specific comes from the
profile; `rng` adds the small frame-to-frame jitter of a real line (position on the belt,
belt phase, flicker) and the sensor noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from factory_sim.profiles import Conveyor, Lighting, LineProfile, Optics
from factory_sim.surfaces import Array, Image


def kelvin_to_bgr(kelvin: float) -> Array:
    """Approximate colour of a black body at `kelvin` (Tanner Helland's fit), BGR in [0, 1]."""
    t = kelvin / 100.0
    if t <= 66:
        r = 255.0
        g = 99.4708025861 * math.log(t) - 161.1195681661
    else:
        r = 329.698727446 * (t - 60) ** -0.1332047592
        g = 288.1221695283 * (t - 60) ** -0.0755148492
    if t >= 66:
        b = 255.0
    elif t <= 19:
        b = 0.0
    else:
        b = 138.5177312231 * math.log(t - 10) - 305.0447927307
    bgr: Array = np.clip(np.array([b, g, r], np.float32) / 255.0, 0.0, 1.0)
    return bgr


def white_balance_gains(kelvin: float, strength: float = 0.5) -> Array:
    """Per-channel gains of a camera white-balanced for 5500 K under a `kelvin` light.

    `strength` < 1 models the camera's partial automatic correction. Gains average to 1,
    so colour temperature changes colour balance, not brightness.
    """
    ratio = kelvin_to_bgr(kelvin) / kelvin_to_bgr(5500.0)
    gains = np.power(np.maximum(ratio, 1e-3), strength)
    out: Array = (gains / gains.mean()).astype(np.float32)
    return out


def orient(product: Image, optics: Optics) -> Image:
    out = np.rot90(product, optics.quarter_turns)
    if optics.mirrored:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def conveyor_belt(rng: np.random.Generator, size: int, conveyor: Conveyor) -> Image:
    """Belt texture: stripes across the direction of travel plus rubber grain."""
    period = max(2.0, conveyor.stripe_period * size)
    phase = rng.uniform(0, 2 * np.pi)
    y = np.arange(size, dtype=np.float32)[:, None]
    stripes = np.sin(2 * np.pi * y / period + phase) * conveyor.stripe_contrast
    grain = rng.standard_normal((size, size), dtype=np.float32) * 0.02
    base = np.asarray(conveyor.belt_bgr, np.float32)
    belt = base[None, None, :] * (1.0 + stripes + grain)[:, :, None]
    out: Array = np.clip(belt, 0.0, 1.0).astype(np.float32)
    return out


def placement(rng: np.random.Generator, size: int, optics: Optics) -> Array:
    """Where the product's corners land in the frame (a keystone quad with jitter), [4, 2]."""
    half = optics.coverage * size / 2
    cx, cy = size / 2 + rng.normal(0, 0.02 * size, 2)
    near, far = half * (1 + optics.tilt / 2), half * (1 - optics.tilt / 2)
    if optics.tilt_axis == 0:  # far edge at the top
        quad = [(cx - far, cy - half), (cx + far, cy - half), (cx + near, cy + half),
                (cx - near, cy + half)]  # fmt: skip
    else:  # far edge on the left
        quad = [(cx - half, cy - far), (cx + half, cy - near), (cx + half, cy + near),
                (cx - half, cy + far)]  # fmt: skip
    pts = np.array(quad, np.float32)
    angle = math.radians(rng.normal(0, 2.0))  # the product is never placed perfectly square
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    centre = np.array([cx, cy], np.float32)
    return ((pts - centre) @ rot.T.astype(np.float32) + centre).astype(np.float32)


def illumination(size: int, lighting: Lighting, flicker: float) -> Array:
    """Scalar illumination map: intensity, a linear gradient, and frame-to-frame flicker."""
    a = math.radians(lighting.falloff_angle_deg)
    coords = (np.arange(size, dtype=np.float32) / max(size - 1, 1)) - 0.5
    grad = coords[None, :] * math.cos(a) + coords[:, None] * math.sin(a)
    return (lighting.intensity * flicker * (1.0 + 2 * lighting.falloff * grad)).astype(np.float32)


def vignette(size: int, strength: float) -> Array:
    """Radial lens fall-off: 1 at the centre, 1 - strength in the corners."""
    coords = (np.arange(size, dtype=np.float32) / max(size - 1, 1)) * 2 - 1
    radius2 = (coords[None, :] ** 2 + coords[:, None] ** 2) / 2
    out: Array = 1.0 - strength * radius2
    return out


def motion_blur(frame: Array, length: float) -> Array:
    """Blur along the direction of travel (the frame's vertical axis) over `length` pixels."""
    taps = round(length)
    if taps < 2:
        return frame
    kernel = np.full((taps, 1), 1.0 / taps, np.float32)
    out: Array = cv2.filter2D(frame, -1, kernel, borderType=cv2.BORDER_REFLECT)
    return out


def shadow(cover: Array, size: int, angle_deg: float) -> Array:
    """The product's soft shadow on the belt, cast away from the light."""
    a = math.radians(angle_deg)
    shift = 0.03 * size
    m = np.array([[1, 0, -math.cos(a) * shift], [0, 1, -math.sin(a) * shift]], np.float32)
    moved = cv2.warpAffine(cover, m, (size, size), borderMode=cv2.BORDER_CONSTANT)
    out: Array = cv2.GaussianBlur(moved, (0, 0), max(1.0, 0.02 * size))
    return out


Box = tuple[int, int, int, int]
"""x0, y0, x1, y1 in frame pixels (x1 and y1 exclusive)."""


@dataclass(frozen=True)
class Shot:
    image: Array
    """uint8 BGR, the size of the product surface."""
    box: Box | None
    """Where the marked region (the defect) landed in the frame; None if nothing was marked."""


def _box(mask: Array, optics: Optics, homography: Array, size: int) -> Box | None:
    moved = cv2.warpPerspective(orient(mask, optics), homography, (size, size))
    ys, xs = np.nonzero(moved > 0.5)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def capture(
    product: Image, profile: LineProfile, rng: np.random.Generator, marks: Array | None = None
) -> Shot:
    """What the line's camera records of `product`; `marks` (a mask of the product) gets a box."""
    size = product.shape[0]
    optics, lighting = profile.optics, profile.lighting
    oriented = orient(product, optics)
    src = np.array([[0, 0], [size, 0], [size, size], [0, size]], np.float32)
    homography = cv2.getPerspectiveTransform(src, placement(rng, size, optics))
    box = None if marks is None else _box(marks, optics, homography, size)
    warped = cv2.warpPerspective(oriented, homography, (size, size), flags=cv2.INTER_LINEAR)
    cover = cv2.warpPerspective(
        np.ones((size, size), np.float32), homography, (size, size), flags=cv2.INTER_LINEAR
    )
    belt = conveyor_belt(rng, size, profile.conveyor)
    belt *= (1.0 - 0.45 * shadow(cover, size, lighting.falloff_angle_deg))[:, :, None]
    cover = cover[:, :, None]
    frame = warped * cover + belt * (1.0 - cover)
    light = illumination(size, lighting, float(rng.normal(1.0, 0.02)))
    light *= vignette(size, optics.vignetting)
    frame = frame * light[:, :, None] * white_balance_gains(lighting.colour_temp_k)
    frame = motion_blur(frame, optics.motion_px * size / 128)
    sigma = optics.blur_sigma * size / 128
    if sigma > 0.25:
        frame = cv2.GaussianBlur(frame, (0, 0), sigma)
    frame = frame + rng.standard_normal(frame.shape, dtype=np.float32) * optics.noise_sigma
    image: Array = np.clip(np.rint(frame * 255.0), 0, 255).astype(np.uint8)
    return Shot(image, box)
