"""Feature groups that tell defect kinds apart on textured, differently lit surfaces.

    parts = shape_features(g, image, grey, resid, band, lo, hi)   # ONNX tensor names, [N, k]

Each group is a list of [N, k] tensors appended to the feature vector (`trainer.features`):

- colour shift (`chroma_shift`): per 4- and 8-pixel cell of the centre, log colour ratios
  (log R/G, log B/G) against the median cell, averaged with weights = how much darker (or
  brighter) the cell is than the median cell. A multiplicative, tinted film (oil) shifts the
  log ratios whatever the light's colour temperature; a grey additive blotch on grey metal
  does not. Also the darkest and brightest cell (log) and the largest ratio shift.
- orientation (`orientation`): four oriented 5x5 line detectors (a narrow minus a wide
  Gaussian across the direction). Their minimum responds to points (dust) and not to lines
  (brushed grain, scratches); the spread max - min responds to lines. For each map: p99 and
  max over the median, share above 4x the median, strongest 4-pixel cell over the median
  cell, share of cells above twice the median cell.
- extent (`extent`): where a map clearly exceeds its own median (weights relu(m - k*median)
  / median), the weighted spatial spread, elongation (1 for a line, 0 for a round cluster)
  and log total weight. For the fine residual and the band-pass (k = 3, 6), and the point
  and line maps (k = 4).

All ratios are to the frame's own median, so a line's texture strength and lighting move
them little. Plain opset 17 ops.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from trainer.detectors import line_kernels
from trainer.onnxgraph import Graph

ORIENTATIONS = 4
FINE, COARSE = 4, 8
COUNT = 2 * 10 + 2 * 5 + 6 * 3
"""Features added by `shape_features`."""


def _median(g: Graph, flat: str, n: int) -> str:
    return g.kth_largest(flat, n // 2 + 1)


def _cells(g: Graph, x: str, cell: int) -> str:
    return g.op("AveragePool", [x], kernel_shape=[cell, cell], strides=[cell, cell])


def _weighted(g: Graph, w: str, v: str, wsum: str) -> str:
    """sum(w * v) / sum(w) over the last axis, [N, 1] (means stand in for sums)."""
    return g.op("Div", [g.mean(g.op("Mul", [w, v]), [-1]), wsum])


def chroma_shift(g: Graph, crop: str, side: int, cell: int) -> list[str]:
    eps = g.const(np.float32(1e-3))
    n = (side // cell) ** 2
    logs = g.op("Log", [g.op("Add", [_cells(g, crop, cell), eps])])  # [N, 3, c, c]
    logs = g.op("Reshape", [logs, g.const(np.array([0, 3, -1], np.int64))])  # [N, 3, n]
    lgrey = g.mean(logs, [1])  # [N, 1, n]
    ratios = g.op("Sub", [logs, lgrey])  # log channel / geometric-mean grey
    dg = g.flat(g.op("Sub", [lgrey, _median(g, lgrey, n)]))  # [N, n]
    dch = g.op("Sub", [ratios, _median(g, ratios, n)])  # [N, 3, n]
    red = g.flat(g.op("Slice", [dch, *_index(g, 0)]))
    blue = g.flat(g.op("Slice", [dch, *_index(g, 2)]))
    tiny = g.const(np.float32(1e-4))
    out: list[str] = []
    for sign in (-1.0, 1.0):
        w = g.op("Relu", [g.op("Mul", [dg, g.const(np.float32(sign))])])
        wsum = g.op("Add", [g.mean(w, [-1]), tiny])
        out += [_weighted(g, w, red, wsum), _weighted(g, w, blue, wsum), _weighted(g, w, w, wsum)]
    out += [
        g.op("ReduceMin", [dg], axes=[1], keepdims=1),
        g.op("ReduceMax", [dg], axes=[1], keepdims=1),
        g.op("ReduceMax", [g.op("Abs", [red])], axes=[1], keepdims=1),
        g.op("ReduceMax", [g.op("Abs", [blue])], axes=[1], keepdims=1),
    ]
    return out


def _index(g: Graph, index: int, axis: int = 1) -> tuple[str, str, str]:
    """Slice inputs that keep `index` of `axis` (as a size-1 axis)."""
    return (
        g.const(np.array([index], np.int64)),
        g.const(np.array([index + 1], np.int64)),
        g.const(np.array([axis], np.int64)),
    )


def oriented_kernels() -> np.ndarray:
    """[ORIENTATIONS, 1, 5, 5]: zero-sum line detectors at 0, 45, 90 and 135 degrees."""
    return line_kernels(ORIENTATIONS, 1.5, 2)


def _col(g: Graph, x: str, index: int) -> str:
    """Column `index` of [N, M] as [N, 1]."""
    return g.op("Slice", [x, *_index(g, index)])


def orientation(
    g: Graph, grey_margin: str, side: int, on_product: str
) -> tuple[list[str], str, str]:
    """Stats of the point and line maps; also both maps stacked ([N, 2, side*side]) and
    their medians ([N, 2, 1])."""
    resp = g.op("Abs", [g.op("Conv", [grey_margin, g.const(oriented_kernels(), "orient")])])
    resp = g.op("Mul", [resp, on_product])
    point = g.op("ReduceMin", [resp], axes=[1], keepdims=1)
    lines = g.op("Sub", [g.op("ReduceMax", [resp], axes=[1], keepdims=1), point])
    maps = g.op("Concat", [point, lines], axis=1)  # [N, 2, side, side]
    pixels, n_cells = side * side, (side // FINE) ** 2
    eps = g.const(np.float32(1e-4))
    flat = g.op("Reshape", [maps, g.const(np.array([0, 2, -1], np.int64))])
    med = g.op("Add", [_median(g, flat, pixels), eps])  # [N, 2, 1]
    p99 = g.kth_largest(flat, max(1, pixels // 100))
    top = g.op("ReduceMax", [flat], axes=[2], keepdims=1)
    above = g.op("Greater", [flat, g.op("Mul", [med, g.const(np.float32(4.0))])])
    cells = g.op("Reshape", [_cells(g, maps, FINE), g.const(np.array([0, 2, -1], np.int64))])
    cmed = g.op("Add", [_median(g, cells, n_cells), eps])
    cabove = g.op("Greater", [cells, g.op("Mul", [cmed, g.const(np.float32(2.0))])])
    stats = g.op(
        "Concat",
        [g.op("Div", [p99, med]), g.op("Div", [top, med]),
         g.mean(g.op("Cast", [above], to=1), [2]),
         g.op("Div", [g.op("ReduceMax", [cells], axes=[2], keepdims=1), cmed]),
         g.mean(g.op("Cast", [cabove], to=1), [2])],
        axis=2,
    )  # fmt: skip
    return [g.flat(stats)], flat, med


def extent(g: Graph, maps: str, med: str, side: int, ks: Sequence[float]) -> str:
    """Spread, elongation and log weight of each map ([N, M, P], medians [N, M, 1]) above
    k x its median: [N, 3M]."""
    k = g.const(np.array(ks, np.float32).reshape(1, -1, 1))
    w = g.op("Div", [g.op("Relu", [g.op("Sub", [maps, g.op("Mul", [med, k])])]), med])
    yy, xx = (c.ravel() for c in np.mgrid[0:side, 0:side].astype(np.float32) / side)
    coords = np.stack([np.ones_like(xx), xx, yy, xx * xx, yy * yy, xx * yy], axis=1)
    sums = g.op("MatMul", [w, g.const(coords / (side * side), "coords")])  # [N, M, 6]
    wsum = g.op("Add", [g.op("Slice", [sums, *_index(g, 0, axis=2)]), g.const(np.float32(1e-6))])
    m = g.op("Div", [sums, wsum])  # weighted means of 1, x, y, xx, yy, xy
    mx, my = (g.op("Slice", [m, *_index(g, i, axis=2)]) for i in (1, 2))
    cxx = g.op("Sub", [g.op("Slice", [m, *_index(g, 3, axis=2)]), g.op("Mul", [mx, mx])])
    cyy = g.op("Sub", [g.op("Slice", [m, *_index(g, 4, axis=2)]), g.op("Mul", [my, my])])
    cxy = g.op("Sub", [g.op("Slice", [m, *_index(g, 5, axis=2)]), g.op("Mul", [mx, my])])
    trace = g.op("Relu", [g.op("Add", [cxx, cyy])])
    diff = g.op("Sub", [cxx, cyy])
    cross = g.op("Mul", [g.const(np.float32(4.0)), g.op("Mul", [cxy, cxy])])
    split = g.op("Sqrt", [g.op("Add", [g.op("Mul", [diff, diff]), cross])])
    elongation = g.op("Div", [split, g.op("Add", [trace, g.const(np.float32(1e-6))])])
    out = g.op("Concat", [g.op("Sqrt", [trace]), elongation, g.op("Log", [wsum])], axis=2)
    return g.flat(out)


def shape_features(
    g: Graph,
    image: str,
    grey_of: str,
    maps: tuple[str, str],
    medians: tuple[str, str],
    lo: int,
    hi: int,
    on_product: str,
) -> list[str]:
    """Every group above. `grey_of` is the 1x1 luma kernel, `maps` the centre's fine residual
    and band-pass ([N, 1, side, side]) and `medians` their medians ([N, 1])."""
    side = hi - lo
    crop = g.op(
        "Slice",
        [image, g.const(np.array([lo, lo], np.int64)), g.const(np.array([hi, hi], np.int64)),
         g.const(np.array([2, 3], np.int64))],
    )  # fmt: skip
    margin = g.op(
        "Slice",
        [image, g.const(np.array([lo - 2, lo - 2], np.int64)),
         g.const(np.array([hi + 2, hi + 2], np.int64)), g.const(np.array([2, 3], np.int64))],
    )  # fmt: skip
    grey_margin = g.op("Conv", [margin, grey_of])
    parts = chroma_shift(g, crop, side, FINE) + chroma_shift(g, crop, side, COARSE)
    stats, oriented, omed = orientation(g, grey_margin, side, on_product)
    shape = g.const(np.array([0, 1, -1], np.int64))
    fine, blobs = (g.op("Reshape", [m, shape]) for m in maps)
    rmed, bmed = (g.op("Reshape", [m, shape]) for m in medians)
    stacked = g.op("Concat", [fine, fine, blobs, blobs, oriented], axis=1)  # [N, 6, P]
    med = g.op("Concat", [rmed, rmed, bmed, bmed, omed], axis=1)  # [N, 6, 1]
    return [*parts, *stats, extent(g, stacked, med, side, (3.0, 6.0, 3.0, 6.0, 4.0, 4.0))]
