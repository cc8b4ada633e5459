"""Point and line detectors over the whole product, belt masked out: dust and scratches.

    parts = detector_features(g, grey, valid, level, size, lo, hi)   # [N, k] tensor names

Two banks of zero-sum oriented line detectors (a narrow minus a wide Gaussian across the
direction): 4 directions at 5x5 (short support) and 8 directions at 9x9 (longer support,
for long thin scratches against a long brushed grain). For each bank the minimum of the
absolute responses is a point map (a speck answers in every direction, a line in one) and
max - min a line map. Each map is multiplied by the product mask (`trainer.beltmask`) and
looked at over the frame minus a `size/16` border, so defects near the product's edge count
and the belt's edge does not. Per map (4 maps):

- the 1st, 5th, 20th and 60th largest values, over the product's grey level (contrast: how
  much a speck or line stands out) and over the map's median in the centre square (how
  much it stands out of this surface's own texture);
- local maxima (a 3x3 max-pool equals the value) above 3, 5 and 8 x the median and above
  0.03 and 0.06 x the grey level: how many, and how many in the densest `3/16 size` square
  (dust comes in clusters of specks, a scratch's ridge gives few maxima).

Plain opset 17; about a millisecond of CPU per 64 px frame.
"""

from __future__ import annotations

import numpy as np

from trainer.onnxgraph import Graph

BANKS = ((4, 1.5, 2), (8, 3.0, 4))
"""(directions, Gaussian sigma along the line, kernel radius) of each detector bank."""
TOP = (1, 5, 20, 60)
MEDIAN_STEPS = (3.0, 5.0, 8.0)
CONTRAST_STEPS = (0.03, 0.06)
MAPS = 2 * len(BANKS)
COUNT = MAPS * (2 * len(TOP) + 2 * (len(MEDIAN_STEPS) + len(CONTRAST_STEPS)))
"""Features added by `detector_features`."""


def line_kernels(directions: int, along: float, radius: int) -> np.ndarray:
    """[directions, 1, 2r+1, 2r+1]: zero-sum line detectors, evenly spread over 180 degrees."""
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1].astype(np.float64)
    kernels = []
    for theta in np.arange(directions) * np.pi / directions:
        across = -xx * np.sin(theta) + yy * np.cos(theta)
        length = xx * np.cos(theta) + yy * np.sin(theta)
        narrow = np.exp(-(across**2) / (2 * 0.7**2) - length**2 / (2 * along**2))
        wide = np.exp(-(across**2) / (2 * 1.6**2) - length**2 / (2 * along**2))
        kernels.append(narrow / narrow.sum() - wide / wide.sum())
    return np.stack(kernels)[:, None].astype(np.float32)


def _square(g: Graph, x: str, lo: int, hi: int) -> str:
    return g.op(
        "Slice",
        [x, g.const(np.array([lo, lo], np.int64)), g.const(np.array([hi, hi], np.int64)),
         g.const(np.array([2, 3], np.int64))],
    )  # fmt: skip


def detector_features(
    g: Graph, grey: str, valid: str, level: str, size: int, lo: int, hi: int
) -> list[str]:
    """`grey` and `valid` are [N, 1, S, S] (frame grey, product mask), `level` the product's
    grey level [N, 1, 1, 1]; the centre square `lo:hi` gives each map's median."""
    maps = []
    for directions, along, radius in BANKS:
        kernels = g.const(line_kernels(directions, along, radius), "lines")
        resp = g.op("Abs", [g.op("Conv", [grey, kernels], pads=[radius] * 4)])
        point = g.op("ReduceMin", [resp], axes=[1], keepdims=1)
        line = g.op("Sub", [g.op("ReduceMax", [resp], axes=[1], keepdims=1), point])
        maps += [point, line]
    stacked = g.op("Concat", maps, axis=1)  # [N, MAPS, S, S]
    per_map = g.const(np.array([0, MAPS, -1], np.int64))
    centre = g.op("Reshape", [_square(g, stacked, lo, hi), per_map])
    med = g.op("Add", [g.kth_largest(centre, (hi - lo) ** 2 // 2 + 1), g.const(np.float32(1e-4))])
    border = size // 16
    region = _square(g, g.op("Mul", [stacked, valid]), border, size - border)
    flat = g.op("Reshape", [region, per_map])
    top = g.op(
        "Gather", [g.topk(flat, max(TOP)), g.const(np.array(TOP, np.int64) - 1)], axis=2
    )  # [N, MAPS, len(TOP)]
    level3 = g.op("Reshape", [level, g.const(np.array([-1, 1, 1], np.int64))])
    out = [g.flat(g.op("Div", [top, level3])), g.flat(g.op("Div", [top, med]))]
    peaks = g.op(
        "GreaterOrEqual", [region, g.op("MaxPool", [region], kernel_shape=[3, 3], pads=[1] * 4)]
    )
    med4 = g.op("Unsqueeze", [med, g.const(np.array([3], np.int64))])  # [N, MAPS, 1, 1]
    steps = [g.op("Mul", [med4, g.const(np.float32(k))]) for k in MEDIAN_STEPS]
    steps += [g.op("Mul", [level, g.const(np.float32(k))]) for k in CONTRAST_STEPS]
    window = 3 * size // 16
    axes = g.const(np.array([2, 3], np.int64))
    for step in steps:
        found = g.op("Cast", [g.op("And", [peaks, g.op("Greater", [region, step])])], to=1)
        densest = g.op(
            "ReduceMax",
            [g.op("AveragePool", [found], kernel_shape=[window, window])],
            axes=[2, 3],
            keepdims=0,
        )
        out += [
            g.op("ReduceSum", [found, axes], keepdims=0),
            g.op("Mul", [densest, g.const(np.float32(window * window))]),
        ]
    return out
