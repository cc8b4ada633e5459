"""Which pixels of a frame show the product: the conveyor belt around it is masked out.

    valid = product_mask(g, grey, size, lo, hi)    # ONNX tensor name, [N, 1, S, S] of 0/1

The product does not fill the frame: the belt shows at the borders, and how far in it reaches
depends on the line (coverage, camera tilt) and on where the product lies on the belt. Its
edge is a strong, long, straight step that point and line detectors mistake for a defect, so
a fixed centre crop is either too small (defects near the edge are missed) or, on some lines,
too large (the edge falls inside). The mask follows each frame instead:

1. the belt level is the median grey of the frame's outer 2-pixel ring, the product level the
   median of the centre square (`lo:hi`), which always shows the product;
2. a pixel looks like belt when it is closer to the belt level than half the step between the
   two levels;
3. belt-looking pixels connected to the ring are the belt: the ring is grown `GROW` times by a
   3x3 max-pool, each time kept only on belt-looking pixels (a reconstruction by dilation), so
   a dark defect inside the product (oil) is not taken for belt;
4. the belt is dilated by `EDGE` pixels (the blurred edge plus a detector's reach) and the
   rest is the product.

With belt and product levels closer than `MIN_STEP` the mask is all ones (nothing is masked).
"""

from __future__ import annotations

import numpy as np

from trainer.onnxgraph import Graph

RING = 2
GROW = 12
EDGE = 3
MIN_STEP = 0.06


def ring_indices(size: int) -> np.ndarray:
    """Flat indices of the outer `RING`-pixel ring of a size x size frame."""
    ring = np.zeros((size, size), bool)
    ring[:RING], ring[-RING:], ring[:, :RING], ring[:, -RING:] = True, True, True, True
    return np.flatnonzero(ring).astype(np.int64)


def product_mask(g: Graph, grey: str, size: int, lo: int, hi: int) -> str:
    """`grey` is the frame's grey image [N, 1, S, S]; returns 1 on the product, 0 elsewhere."""
    flat = g.flat(grey)
    ring = ring_indices(size)
    ring_px = g.op("Gather", [flat, g.const(ring, "ring")], axis=1)
    belt = g.kth_largest(ring_px, len(ring) // 2 + 1)  # [N, 1]
    centre = g.flat(
        g.op(
            "Slice",
            [grey, g.const(np.array([lo, lo], np.int64)), g.const(np.array([hi, hi], np.int64)),
             g.const(np.array([2, 3], np.int64))],
        )
    )  # fmt: skip
    product = g.kth_largest(centre, (hi - lo) ** 2 // 2 + 1)
    shape = g.const(np.array([-1, 1, 1, 1], np.int64))
    belt4 = g.op("Reshape", [belt, shape])
    step = g.op("Reshape", [g.op("Abs", [g.op("Sub", [product, belt])]), shape])
    near_belt = g.op(
        "Less",
        [g.op("Abs", [g.op("Sub", [grey, belt4])]), g.op("Mul", [step, g.const(np.float32(0.5))])],
    )
    contrast = g.op("Greater", [step, g.const(np.float32(MIN_STEP))])
    belt_like = g.op("Cast", [g.op("And", [near_belt, contrast])], to=1)
    ring_map = np.zeros((1, 1, size, size), np.float32)
    ring_map.reshape(-1)[ring] = 1.0
    seed = g.op("Mul", [g.const(ring_map, "ring_map"), belt_like])
    for _ in range(GROW):
        grown = g.op("MaxPool", [seed], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        seed = g.op("Mul", [grown, belt_like])
    width = 2 * EDGE + 1
    near = g.op("MaxPool", [seed], kernel_shape=[width, width], pads=[EDGE] * 4)
    return g.op("Sub", [g.const(np.float32(1.0)), near])
