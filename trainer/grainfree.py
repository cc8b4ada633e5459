"""Low-contrast, low-frequency defects (shaded dents, soft stains) with the grain taken out.

    parts = grainfree_features(g, grey_frame, size)    # ONNX tensor names, [N, 1] each

On a directional texture (brushed metal, extruded or rolled stock) the grain's streaks are
as strong as a shallow dent, and an isotropic blur keeps them (a long streak stays a long
streak). What a streak does not do is change along itself. So, on the grey frame divided by
its mean and pooled to about 64 px:

- the mean along a short line through every pixel, in each of `DIRECTIONS` directions (a
  normalised convolution, so the frame's border does not read as an edge); the residual
  `pixel - line mean` of the direction with the least residual energy over the centre is the
  frame without its grain (a linear light gradient along the line cancels too; on an
  isotropic texture every direction leaves about the same and any one will do);
- that residual smoothed at two blob scales; of its magnitude, of its gradient magnitude
  (a shaded dent is a lit rim beside a shadowed one) and of its curvature (the Hessian's
  Frobenius norm): the strongest cell and the mean of the 4 strongest cells as robust
  z-scores against the frame's own cells (median, MAD), and the strongest cell over the
  median cell; plus how directional the frame is (least over most directional residual
  energy).

Curvature is what tells a compact defect from the material's own broad mottling (uneven
finish, coating thickness, slow lighting): at equal depth, a bump or shading pattern k times
wider has k times less slope but k^2 times less curvature, so the second derivative is a
whitening filter for texture whose energy sits at low spatial frequencies, the usual case on
real surfaces. On a brushed-metal-like benchmark line it alone separates dents from good
parts far better than magnitude or slope (docs/benchmarks.md, "Training backends").

Plain opset 17; the work is done at the pooled size, so it stays cheap on larger frames.
"""

from __future__ import annotations

import math

import numpy as np

from trainer.onnxgraph import Graph
from trainer.texturestats import blur, cell_z, least_energy_map

DIRECTIONS = 16
"""Line directions over 180 degrees: a grain at most 5.6 degrees off one of them."""
BLOB_SIGMAS = (1.0, 2.0)
"""Smoothing of the grain-free residual, in pooled pixels (pooled side ~64)."""
PER_SCALE = 9
"""Features per blob scale: magnitude, slope and curvature, 3 cell statistics each."""
COUNT = 1 + len(BLOB_SIGMAS) * PER_SCALE
"""Features added by `grainfree_features`."""


def line_kernels(radius: int, directions: int = DIRECTIONS) -> np.ndarray:
    """[directions, 1, 2r+1, 2r+1]: each a line segment through the centre at angle
    k*180/directions, sampled every half pixel and spread bilinearly; each sums to 1."""
    side = 2 * radius + 1
    out = np.zeros((directions, 1, side, side), np.float32)
    steps = np.arange(-radius, radius + 0.25, 0.5)
    for d in range(directions):
        theta = d * math.pi / directions
        for t in steps:
            x, y = radius + t * math.cos(theta), radius + t * math.sin(theta)
            x0, y0 = math.floor(x), math.floor(y)
            fx, fy = x - x0, y - y0
            for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                              (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):  # fmt: skip
                xi, yi = x0 + dx, y0 + dy
                if w > 0 and 0 <= xi < side and 0 <= yi < side:
                    out[d, 0, yi, xi] += w
        out[d] /= out[d].sum()
    return out


def hessian_kernels() -> np.ndarray:
    """[3, 1, 3, 3]: d2/dx2, d2/dy2 and sqrt(2) d2/dxdy (central differences), so the norm
    of the three responses is the Hessian's Frobenius norm."""
    out = np.zeros((3, 1, 3, 3), np.float32)
    out[0, 0, 1] = [1, -2, 1]
    out[1, 0, :, 1] = [1, -2, 1]
    out[2, 0] = np.array([[1, 0, -1], [0, 0, 0], [-1, 0, 1]]) * math.sqrt(2) / 4
    return out


def pool_factor(size: int) -> int:
    """How many pixels of a `size` frame one pixel of the grain-free map averages (per side):
    the map is about 64 px across, `size // pool_factor(size)`."""
    return max(1, size // 64)


def grain_free(g: Graph, grey_frame: str, size: int) -> tuple[str, str, str, str, int]:
    """The grey frame [N, 1, size, size] without its grain, at the pooled size `side` (about
    64 px): (`free` [N, 1, side, side], the least and the largest directional residual energy
    [N, 1] each, `ones` [1, 1, side, side], side)."""
    factor = pool_factor(size)
    side = size // factor
    eps = g.const(np.float32(1e-3))
    level = g.op("Add", [g.mean(grey_frame, [2, 3]), eps])
    grey = g.op("Div", [grey_frame, level])
    if factor > 1:
        grey = g.op("AveragePool", [grey], kernel_shape=[factor] * 2, strides=[factor] * 2)
    radius = max(3, round(side / 10))
    kernels = g.const(line_kernels(radius), "lines")
    pads = [radius] * 4
    ones = g.const(np.ones((1, 1, side, side), np.float32), "ones")
    line_mean = g.op(
        "Div",
        [g.op("Conv", [grey, kernels], pads=pads), g.op("Conv", [ones, kernels], pads=pads)],
    )  # [N, D, side, side]
    resid = g.op("Sub", [grey, line_mean])
    lo, hi = centre(side)
    starts = g.const(np.array([lo, lo], np.int64))
    ends = g.const(np.array([hi, hi], np.int64))
    axes = g.const(np.array([2, 3], np.int64))
    centred = g.op("Slice", [g.op("Abs", [resid]), starts, ends, axes])
    energy = g.op("ReduceMean", [centred], axes=[2, 3], keepdims=0)  # [N, D]
    least, most, free = least_energy_map(g, resid, energy)
    return free, least, most, ones, side


CELL = 4
"""Cell side of the grain-free statistics, in pooled pixels."""


def centre(side: int) -> tuple[int, int]:
    """The centre square [lo, hi) of a `side` map the statistics are taken over: 10% of the
    side off each border, a whole number of `CELL`s."""
    lo = round(side * 0.1)
    return lo, lo + ((side - 2 * lo) // CELL) * CELL


def grainfree_features(g: Graph, grey_frame: str, size: int) -> list[str]:
    """`COUNT` features of the grey frame [N, 1, size, size] (see the module docstring)."""
    free, least, most, ones, side = grain_free(g, grey_frame, size)
    lo, hi = centre(side)
    n_cells = ((hi - lo) // CELL) ** 2
    starts = g.const(np.array([lo, lo], np.int64))
    ends = g.const(np.array([hi, hi], np.int64))
    axes = g.const(np.array([2, 3], np.int64))

    def crop(x: str) -> str:
        return g.op("Slice", [x, starts, ends, axes])

    parts = [g.op("Div", [least, g.op("Add", [most, g.const(np.float32(1e-6))])])]
    sobel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)
    grads = g.const(np.stack([sobel, sobel.T])[:, None, :, :], "sobel")
    hessian = g.const(hessian_kernels(), "hessian")
    for sigma in BLOB_SIGMAS:
        smooth = blur(g, free, ones, sigma)
        magnitude = crop(g.op("Abs", [smooth]))
        d = g.op("Conv", [smooth, grads], pads=[1, 1, 1, 1])
        slope = crop(g.op("Sqrt", [g.op("ReduceSumSquare", [d], axes=[1], keepdims=1)]))
        h = g.op("Conv", [smooth, hessian], pads=[1, 1, 1, 1])
        curvature = crop(g.op("Sqrt", [g.op("ReduceSumSquare", [h], axes=[1], keepdims=1)]))
        parts += list(cell_z(g, magnitude, CELL, n_cells))
        parts += list(cell_z(g, slope, CELL, n_cells))
        parts += list(cell_z(g, curvature, CELL, n_cells))
    return parts
