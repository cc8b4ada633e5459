"""The product mask keeps the belt's edge out of the detectors; specks and lines still count."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

from trainer.beltmask import EDGE, product_mask
from trainer.detectors import BANKS, MEDIAN_STEPS, TOP
from trainer.features import GRID, extract, feature_graph
from trainer.onnxgraph import Graph

START = GRID * GRID * 3 + 3 + 19  # the detector features follow the 70 older ones
MAPS = 2 * len(BANKS)  # point, line for each bank


def _frame(seed: int = 0) -> np.ndarray:
    """A textured grey product (rows and columns 10..53) on a dark belt, [1, 3, 64, 64]."""
    rng = np.random.default_rng(seed)
    frame = np.full((1, 3, 64, 64), 0.25, np.float32)
    frame[:, :, 10:54, 10:54] = 0.6 + 0.01 * rng.standard_normal((1, 1, 44, 44))
    return frame


def _mask(grey: np.ndarray) -> np.ndarray:
    g = Graph()
    out = product_mask(g, "grey", 64, 12, 52)
    graph = helper.make_graph(
        g.nodes, "mask",
        [helper.make_tensor_value_info("grey", TensorProto.FLOAT, ["N", 1, 64, 64])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], g.inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    result: np.ndarray = session.run(None, {"grey": grey})[0]
    return result


def test_the_belt_and_the_product_edge_are_masked_and_a_dark_blob_inside_is_not() -> None:
    frame = _frame()[:, :1]
    frame[:, :, 30:38, 30:38] = 0.3  # a dark film inside the product, belt-dark
    mask = _mask(frame)[0, 0]
    assert mask[:2].max() == 0 and mask[:, :2].max() == 0  # the belt
    assert mask[10 + EDGE - 1, 32] == 0 and mask[10 + EDGE, 32] == 1  # the edge, then product
    assert mask[30:38, 30:38].min() == 1  # not connected to the belt: kept
    assert mask[14:50, 14:50].min() == 1


def test_without_a_visible_belt_nothing_is_masked() -> None:
    flat = np.full((1, 1, 64, 64), 0.5, np.float32)
    assert _mask(flat).min() == 1


def test_a_scratch_raises_the_line_maps_specks_the_point_peaks_the_belt_edge_neither() -> None:
    clean, scratch, specks = _frame(), _frame(), _frame()
    for i in range(24):
        scratch[:, :, 16 + i, 18 + i] += 0.3
    for y, x in np.random.default_rng(5).integers(20, 40, (15, 2)):
        specks[:, :, y, x] += 0.25
    f = extract(feature_graph(64), np.concatenate([clean, scratch, specks]))[:, START:]
    top_over_level = f[:, : MAPS * len(TOP)].reshape(3, MAPS, len(TOP))[:, :, 0]
    steps = f[:, 2 * MAPS * len(TOP) :].reshape(3, -1, 2, MAPS)  # [frame, step, count|densest, map]
    assert MEDIAN_STEPS[1] == 5.0
    peaks_5x = steps[:, 1, 0, 0]  # local maxima of the short point map above 5x its median
    long_line = top_over_level[:, 3]  # the line map of the 9x9 bank, over the grey level
    assert long_line[1] > 5 * long_line[0]  # unmasked, the step to the belt would dwarf it
    assert long_line[0] < 0.03
    assert peaks_5x[2] > 10 + peaks_5x[0]  # most of the 15 specks are found
