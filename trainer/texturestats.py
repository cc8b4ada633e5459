"""Blob and along-the-grain statistics, each against what is normal for the frame's own texture.

    parts = texture_features(g, grey_frame, size)    # ONNX tensor names, [N, k] each

A directional texture (brushed metal, extruded plastic) has strong gradients across its grain
and almost none along it; a dent, a stain or a particle has gradients in every direction. So,
at three scales (Gaussian sigma = size/64, size/32, size/16 on the grey frame divided by its
mean, so the light's level drops out):

- along the grain: the smoothed image's derivative in 8 directions; the direction with the
  least energy over the centre is the grain's (on an isotropic texture any direction will do);
  its |derivative| map gives: least/greatest directional energy (how directional the texture
  is), the strongest cell and the mean of the 4 strongest cells as robust z-scores against the
  frame's cells (median, MAD), p99.5 and max over the median pixel;
- blobs: a difference of Gaussians (sigma, 2.5 sigma), |DoG| cells: strongest and top-4 mean
  z-scores, strongest cell over the median cell.

Blurs are normalised convolutions (zero padding divided by the blurred ones), so the frame's
border does not read as an edge. Plain opset 17.
"""

from __future__ import annotations

import math

import numpy as np

from trainer.onnxgraph import Graph

DIRECTIONS = 8
SCALES = (1.0, 2.0, 4.0)
"""Sigmas in units of size/64 pixels."""
COUNT = len(SCALES) * 8
"""Features added by `texture_features`."""


def _gauss(sigma: float) -> np.ndarray:
    radius = max(1, math.ceil(3 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    k: np.ndarray = np.exp(-(x * x) / (2 * sigma * sigma)).astype(np.float32)
    k /= k.sum()
    return k


def blur(g: Graph, x: str, ones: str, sigma: float) -> str:
    """Separable Gaussian blur of [N, 1, H, W] `x`, divided by the blurred `ones` (same shape
    as one frame) so the zero padding does not darken the border."""
    k = _gauss(sigma)
    r = len(k) // 2
    kx = g.const(k.reshape(1, 1, 1, -1), "gx")
    ky = g.const(k.reshape(1, 1, -1, 1), "gy")

    def sep(v: str) -> str:
        h = g.op("Conv", [v, kx], pads=[0, r, 0, r])
        return g.op("Conv", [h, ky], pads=[r, 0, r, 0])

    return g.op("Div", [sep(x), sep(ones)])


def cell_z(g: Graph, m: str, cell: int, n_cells: int) -> tuple[str, str, str]:
    """Of the cell means of map `m`: (max - median)/MAD, (top-4 mean - median)/MAD, max/median."""
    cells = g.flat(g.op("AveragePool", [m], kernel_shape=[cell] * 2, strides=[cell] * 2))
    eps = g.const(np.float32(1e-6))
    med = g.kth_largest(cells, n_cells // 2 + 1)
    mad = g.op("Add", [g.kth_largest(g.op("Abs", [g.op("Sub", [cells, med])]), n_cells // 2 + 1),
                       eps])  # fmt: skip
    top = g.topk(cells, 4)
    z_max = g.op("Div", [g.op("Sub", [g.op("ReduceMax", [top], axes=[1], keepdims=1), med]), mad])
    z_top = g.op("Div", [g.op("Sub", [g.mean(top, [1]), med]), mad])
    ratio = g.op("Div", [g.op("ReduceMax", [top], axes=[1], keepdims=1), g.op("Add", [med, eps])])
    return z_max, z_top, ratio


def least_energy_map(g: Graph, maps: str, energy: str) -> tuple[str, str, str]:
    """Of `maps` [N, D, H, W], the one whose `energy` [N, D] is least (ties averaged), as
    [N, 1, H, W]; with the least and the largest energy, each [N, 1]."""
    least = g.op("ReduceMin", [energy], axes=[1], keepdims=1)
    most = g.op("ReduceMax", [energy], axes=[1], keepdims=1)
    pick = g.op("Cast", [g.op("Equal", [energy, least])], to=1)  # FLOAT
    pick = g.op(
        "Div", [pick, g.op("ReduceSum", [pick, g.const(np.array([1], np.int64))], keepdims=1)]
    )
    pick4 = g.op("Unsqueeze", [pick, g.const(np.array([2, 3], np.int64))])
    chosen = g.op(
        "ReduceSum", [g.op("Mul", [maps, pick4]), g.const(np.array([1], np.int64))], keepdims=1
    )
    return least, most, chosen


def texture_features(g: Graph, grey_frame: str, size: int) -> list[str]:
    """`COUNT` features of the grey frame [N, 1, size, size] (see the module docstring)."""
    k = size / 64
    cell = max(4, round(4 * k))
    lo = round(size * 0.1)
    side = ((size - 2 * lo) // cell) * cell
    hi = lo + side
    n_cells = (side // cell) ** 2
    pixels = side * side
    eps = g.const(np.float32(1e-3))
    level = g.op("Add", [g.mean(grey_frame, [2, 3]), eps])
    grey = g.op("Div", [grey_frame, level])
    ones = g.const(np.ones((1, 1, size, size), np.float32), "ones")
    starts = g.const(np.array([lo, lo], np.int64))
    ends = g.const(np.array([hi, hi], np.int64))
    axes = g.const(np.array([2, 3], np.int64))

    def crop(x: str) -> str:
        return g.op("Slice", [x, starts, ends, axes])

    sobel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)
    angles = np.arange(DIRECTIONS) * math.pi / DIRECTIONS
    oriented = np.stack([math.cos(t) * sobel + math.sin(t) * sobel.T for t in angles])
    directions = g.const(oriented[:, None, :, :], "dirs")
    parts: list[str] = []
    for scale in SCALES:
        sigma = scale * k
        smooth = blur(g, grey, ones, sigma)
        deriv = crop(g.op("Abs", [g.op("Conv", [smooth, directions], pads=[1, 1, 1, 1])]))
        energy = g.op("ReduceMean", [deriv], axes=[2, 3], keepdims=0)  # [N, 8]
        least, most, along = least_energy_map(g, deriv, energy)
        flat = g.flat(along)
        med = g.op("Add", [g.kth_largest(flat, pixels // 2 + 1), g.const(np.float32(1e-6))])
        p995 = g.kth_largest(flat, max(1, math.ceil(pixels * 0.005)))
        top = g.op("ReduceMax", [flat], axes=[1], keepdims=1)
        z_max, z_top, _ = cell_z(g, along, cell, n_cells)
        parts += [
            g.op("Div", [least, g.op("Add", [most, g.const(np.float32(1e-6))])]),
            z_max,
            z_top,
            g.op("Div", [p995, med]),
            g.op("Div", [top, med]),
        ]
        wide = blur(g, grey, ones, sigma * 2.5)
        band = crop(g.op("Abs", [g.op("Sub", [smooth, wide])]))
        parts += list(cell_z(g, band, cell, n_cells))
    return parts
