"""Product surfaces: brushed metal, painted panel and moulded plastic textures.

Images here are float32 BGR in [0, 1] (shape `[size, size, 3]`); only the final frame is
quantised to uint8. Each call draws a fresh texture realisation from `rng`, with the look
(material, colour, grain) fixed by the line's `Supplier`.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from factory_sim.profiles import Supplier

Array = np.ndarray[Any, Any]
Image = Array  # float32 [H, W, 3] in [0, 1], BGR


def smooth_noise(rng: np.random.Generator, size: int, sigma: float) -> Array:
    """Zero-mean, unit-variance Gaussian noise blurred with `sigma` pixels ([size, size])."""
    field: Array = rng.standard_normal((size, size), dtype=np.float32)
    if sigma > 0.3:
        field = cv2.GaussianBlur(field, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    std = float(field.std())
    return field / std if std > 1e-6 else field


def _brushed(rng: np.random.Generator, size: int, supplier: Supplier) -> Array:
    """Long thin streaks along the grain direction, with a soft sheen across them."""
    pad = int(size * 1.5)
    field = rng.standard_normal((pad, pad), dtype=np.float32)
    length = max(3, int(supplier.grain_scale * size) | 1)
    streaks = cv2.blur(field, (length, 1))
    streaks = cv2.GaussianBlur(streaks, (0, 0), 0.6)
    centre = (pad / 2, pad / 2)
    rot = cv2.getRotationMatrix2D(centre, supplier.grain_angle_deg, 1.0)
    streaks = cv2.warpAffine(streaks, rot, (pad, pad), borderMode=cv2.BORDER_REFLECT)
    off = (pad - size) // 2
    out: Array = streaks[off : off + size, off : off + size]
    out = out / max(float(out.std()), 1e-6)
    sheen = smooth_noise(rng, size, size / 4)
    return out + 0.6 * sheen


def texture_field(rng: np.random.Generator, size: int, supplier: Supplier) -> Array:
    """The grey-level modulation of the material ([size, size], roughly unit variance)."""
    if supplier.material == "brushed_metal":
        return _brushed(rng, size, supplier)
    sigma = max(0.5, supplier.grain_scale * size)
    grain = smooth_noise(rng, size, sigma)
    if supplier.material == "painted_panel":
        peel = smooth_noise(rng, size, sigma * 3)
        return 0.6 * grain + 0.8 * peel
    mottle = smooth_noise(rng, size, size / 6)
    return grain + 0.5 * mottle


def render_surface(rng: np.random.Generator, size: int, supplier: Supplier) -> Image:
    """A fresh product surface of `size` x `size` pixels for this supplier's material."""
    field = texture_field(rng, size, supplier) * supplier.grain_strength
    base = np.asarray(supplier.base_bgr, dtype=np.float32)
    img = base[None, None, :] * (1.0 + field[:, :, None])
    if supplier.material == "plastic":
        # moulded plastic: tiny specular speckles from the matte finish
        speck = rng.random((size, size), dtype=np.float32) > 0.995
        img[speck] += 0.05
    return np.clip(img, 0.0, 1.0).astype(np.float32)
