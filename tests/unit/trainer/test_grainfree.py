"""Grain-free low-frequency statistics (`trainer.grainfree`): a shallow dent on strong grain."""

from __future__ import annotations

import math

import numpy as np
import onnx

from trainer.features import FEATURE_COUNT, extract, feature_graph
from trainer.grainfree import COUNT, DIRECTIONS, PER_SCALE, hessian_kernels, line_kernels
from trainer.texturestats import COUNT as TEXTURE

SIZE = 128


def _grain(rng: np.random.Generator, angle: float, size: int = SIZE) -> np.ndarray:
    """Grey frames with streaks (random across, constant along `angle`) as strong as a dent,
    and a light gradient."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    across = -math.sin(angle) * xx + math.cos(angle) * yy
    profile = np.convolve(rng.standard_normal(4 * size), np.ones(3) / 3, mode="same")
    streaks = np.interp(across, np.arange(-2 * size, 2 * size), profile)
    light = 1 + 0.2 * (xx / size - 0.5)
    grey = (0.5 + 0.04 * streaks) * light + 0.004 * rng.standard_normal((size, size))
    return np.repeat(grey[None, None].astype(np.float32), 3, axis=1)


def _dent(frame: np.ndarray, size: int = SIZE) -> np.ndarray:
    """A shallow shaded bowl, lit on one rim and shadowed on the other."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    r = size * 0.07
    u, v = (xx - size * 0.45) / r, (yy - size * 0.55) / r
    shading = (0.8 * u - 0.6 * v) * np.exp(-(u * u + v * v) * 1.5)
    return np.clip(frame + 0.12 * shading[None, None], 0, 1).astype(np.float32)


def test_line_kernels_are_unit_sum_segments_in_every_direction() -> None:
    k = line_kernels(4)
    assert k.shape == (DIRECTIONS, 1, 9, 9)
    np.testing.assert_allclose(k.sum(axis=(1, 2, 3)), 1.0, atol=1e-6)
    assert k[0, 0, 4].sum() > 0.99  # 0 degrees: the centre row
    assert k[DIRECTIONS // 2, 0, :, 4].sum() > 0.99  # 90 degrees: the centre column
    np.testing.assert_allclose(k[0, 0], k[0, 0, :, ::-1], atol=1e-6)  # symmetric about the centre


def test_a_shallow_dent_stands_out_once_the_grain_is_removed_whatever_its_direction() -> None:
    rng = np.random.default_rng(0)
    graph = feature_graph(SIZE, texture=True)
    onnx.checker.check_model(graph, full_check=True)
    start = FEATURE_COUNT + TEXTURE
    for angle in (0.05, 0.7, 1.9, 2.6):
        plain = _grain(rng, angle)
        f = extract(graph, np.concatenate([plain, _dent(plain), np.clip(plain * 1.3, 0, 1)]))
        free = f[:, start:]
        assert free.shape == (3, COUNT) and np.isfinite(free).all()
        assert free[0, 0] < 0.5  # directional: the line along the grain leaves little
        for first in (1, 1 + PER_SCALE):  # per blob scale: magnitude z max, top-4 z, ratio,
            # slope ..., curvature ...
            assert free[1, first] > 2 * max(free[0, first], 1.0)
            assert free[1, first + 3] > 2 * max(free[0, first + 3], 1.0)
        np.testing.assert_allclose(free[2], free[0], rtol=0.05, atol=0.05)  # brighter light


def test_the_features_are_the_same_graph_at_64_px() -> None:
    rng = np.random.default_rng(1)
    graph = feature_graph(64, texture=True)
    plain = _grain(rng, 0.3, 64)
    f = extract(graph, np.concatenate([plain, _dent(plain, 64)]))[:, FEATURE_COUNT + TEXTURE :]
    assert f.shape == (2, COUNT) and np.isfinite(f).all() and f[1, 1] > f[0, 1]


def _mottle(frame: np.ndarray, width: float, size: int = SIZE) -> np.ndarray:
    """A smooth shading pattern as deep as `_dent`'s, `width` times as wide (uneven finish)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    r = size * 0.07 * width
    u, v = (xx - size * 0.5) / r, (yy - size * 0.5) / r
    shading = (0.8 * u - 0.6 * v) * np.exp(-(u * u + v * v) * 1.5)
    return np.clip(frame + 0.12 * shading[None, None], 0, 1).astype(np.float32)


def test_hessian_kernels_measure_curvature_in_every_direction() -> None:
    k = hessian_kernels()[:, 0]
    yy, xx = np.mgrid[-1:2, -1:2].astype(np.float32)
    for a, b, c in ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.3, -0.7, 0.5)):
        patch = a * xx * xx + b * yy * yy + c * xx * yy  # Hessian [[2a, c], [c, 2b]]
        response = np.array([(w * patch).sum() for w in k])
        frobenius = math.sqrt(4 * a * a + 4 * b * b + 2 * c * c)
        assert abs(np.linalg.norm(response) - frobenius) < 1e-5
        assert abs((k * (patch + 0.4 * xx - 0.2 * yy + 3)).sum(axis=(1, 2)) - response).max() < 1e-5


def test_curvature_tells_a_compact_dent_from_broad_mottling_of_the_same_depth() -> None:
    rng = np.random.default_rng(2)
    graph = feature_graph(SIZE, texture=True)
    start = FEATURE_COUNT + TEXTURE
    magnitude, curvature = 1, 1 + 6  # first blob scale: z max of magnitude, of curvature
    for angle in (0.1, 1.2):
        plain = _grain(rng, angle)
        f = extract(graph, np.concatenate([plain, _dent(plain), _mottle(plain, 2.0)]))[:, start:]
        bare, dent, mottled = f
        assert mottled[magnitude] > 3 * bare[magnitude]  # the broad pattern is there ...
        assert mottled[curvature] < 1.5 * bare[curvature]  # ... but hardly curved
        assert dent[curvature] > 2 * max(mottled[curvature], 1.0)
