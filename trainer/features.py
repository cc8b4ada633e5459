"""Image features as an ONNX graph: the same graph computes training and serving features.

    graph = feature_graph(size=64)                  # onnx.ModelProto: image -> features
    x = extract(graph, images)                      # run it with onnxruntime on [N, 3, S, S]

The input is the model contract's tensor (RGB, [0, 1], NCHW). The features are robust to a
line's lighting and surface texture because most are ratios to the frame's own typical
level (median residual, median cell):

- colour layout: channel means on a 4x4 grid (48) and of the product centre (3);
- grey centre: mean, std, variance of the Laplacian;
- residual from a 5x5 blur, |grey - blur|, over the centre: mean, p99/median, max/median,
  share of pixels above 4x median, the strongest 5x5-cell mean over the median cell;
- gradient (Sobel) magnitude: p99, max/median;
- chroma of the centre's cells (colour minus grey) against the median cell: max and mean
  deviation; grey cells against the median cell: min, max, std;
- blob scale (a 5x5 minus 9x9 band-pass, where dents, oil and stains live and fine grain
  does not): max/median, p99/median, strongest cell over the median cell; the strongest
  gradient cell over the median cell;
- point and line detectors over the whole product (`trainer.detectors`), with the conveyor
  belt and the product's edge masked out (`trainer.beltmask`): contrast and texture ratios of
  the strongest responses, and counts of local maxima (dust specks);
- defect shape (`trainer.defectshape`): log-colour shift of darker/brighter cells (a tinted
  film against a grey blotch), oriented point/line detectors (dust and scratches against
  directional grain), and the spread and elongation of what stands out.

The residual, band-pass, gradient and oriented maps of the centre are multiplied by the
product mask too, so on a line whose product leaves the belt visible inside the centre square
the belt's edge does not pass for a defect. Everything is plain ONNX opset 17 (Conv,
AveragePool, MaxPool, TopK, Reduce*), CPU-friendly: a few milliseconds of CPU per 64x64 frame.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from linefleet_core.modelio import interpolation
from trainer.beltmask import product_mask
from trainer.defectshape import COUNT as SHAPE_COUNT
from trainer.defectshape import shape_features
from trainer.detectors import COUNT as DETECTOR_COUNT
from trainer.detectors import detector_features
from trainer.grainfree import COUNT as GRAINFREE_COUNT
from trainer.grainfree import grainfree_features
from trainer.onnxgraph import Graph
from trainer.texturestats import COUNT as TEXTURE_COUNT
from trainer.texturestats import texture_features

OPSET = 17
IR_VERSION = 8
INPUT = "image"
OUTPUT = "features"
GRID = 4
CELL = 8
FEATURE_COUNT = GRID * GRID * 3 + 3 + 19 + DETECTOR_COUNT + SHAPE_COUNT


def _centre(size: int) -> tuple[int, int]:
    """The product centre: a square whose side is a multiple of `CELL`, about 64% of the frame."""
    side = max(CELL, (round(size * 0.64) // CELL) * CELL)
    lo = (size - side) // 2
    return lo, lo + side


def feature_count(texture: bool = False) -> int:
    """Features per frame: `FEATURE_COUNT`, plus `trainer.texturestats`' and
    `trainer.grainfree`'s with `texture`."""
    return FEATURE_COUNT + (TEXTURE_COUNT + GRAINFREE_COUNT if texture else 0)


def feature_graph(size: int = 64, batch: int | str = "N", texture: bool = False) -> Any:
    """An ONNX model: `image` float32 [batch, 3, size, size] -> `features` [batch, F];
    `texture` appends the along-the-grain and blob statistics of `trainer.texturestats` and
    the grain-free low-frequency ones of `trainer.grainfree`."""
    from onnx import TensorProto, helper

    if size < 32 or size % GRID:
        raise ValueError(f"input size must be >= 32 and a multiple of {GRID}, got {size}")
    g = Graph()
    eps = g.const(np.array(1e-3, np.float32), "eps")
    image = INPUT
    lo, hi = _centre(size)
    side = hi - lo
    pixels = side * side
    grid = g.op("AveragePool", [image], kernel_shape=[size // GRID] * 2, strides=[size // GRID] * 2)
    crop = g.op(
        "Slice",
        [
            image,
            g.const(np.array([lo, lo], np.int64)),
            g.const(np.array([hi, hi], np.int64)),
            g.const(np.array([2, 3], np.int64)),
        ],
    )
    crop_mean = g.mean(crop, [2, 3])
    luma = np.array([0.299, 0.587, 0.114], np.float32).reshape(1, 3, 1, 1)
    luma_kernel = g.const(luma, "luma")
    grey_frame = g.op("Conv", [image, luma_kernel])
    valid = product_mask(g, grey_frame, size, lo, hi)
    on_product = g.op(
        "Slice",
        [valid, g.const(np.array([lo, lo], np.int64)), g.const(np.array([hi, hi], np.int64)),
         g.const(np.array([2, 3], np.int64))],
    )  # fmt: skip
    grey = g.op("Conv", [crop, luma_kernel])
    grey_mean = g.mean(grey, [2, 3])
    grey_std = g.std(grey, [2, 3])
    laplace = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32).reshape(1, 1, 3, 3)
    lap = g.op("Conv", [grey, g.const(laplace, "laplace")], pads=[1, 1, 1, 1])
    lap_std = g.std(lap, [2, 3])
    lap_var = g.op("Mul", [lap_std, lap_std])
    blur = g.op("AveragePool", [grey], kernel_shape=[5, 5], pads=[2] * 4, count_include_pad=0)
    resid = g.op("Mul", [g.op("Abs", [g.op("Sub", [grey, blur])]), on_product])
    resid_flat = g.flat(resid)
    med = g.op("Add", [g.kth_largest(resid_flat, pixels // 2 + 1), eps])
    p99 = g.kth_largest(resid_flat, max(1, math.ceil(pixels * 0.01)))
    rmax = g.op("ReduceMax", [resid_flat], axes=[1], keepdims=1)
    above = g.op("Greater", [resid_flat, g.op("Mul", [med, g.const(np.float32(4.0))])])
    share = g.mean(g.op("Cast", [above], to=TensorProto.FLOAT), [1])
    cells = side // CELL
    n_cells = cells * cells
    rcells = g.flat(g.op("AveragePool", [resid], kernel_shape=[CELL] * 2, strides=[CELL] * 2))
    rcell_ratio = g.op(
        "Div",
        [
            g.op("ReduceMax", [rcells], axes=[1], keepdims=1),
            g.kth_largest(rcells, n_cells // 2 + 1),
        ],
    )
    sobel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)
    kernels = np.stack([sobel, sobel.T])[:, None, :, :]
    grads = g.op("Conv", [grey, g.const(kernels, "sobel")], pads=[1, 1, 1, 1])
    mag = g.op("Sqrt", [g.op("ReduceSumSquare", [grads], axes=[1], keepdims=1)])
    mag = g.flat(g.op("Mul", [mag, on_product]))
    gmed = g.op("Add", [g.kth_largest(mag, pixels // 2 + 1), eps])
    g99 = g.kth_largest(mag, max(1, math.ceil(pixels * 0.01)))
    gmax_ratio = g.op("Div", [g.op("ReduceMax", [mag], axes=[1], keepdims=1), gmed])
    # blob-scale structure (dents, oil, stains) apart from fine grain: a band-pass image
    wide = g.op("AveragePool", [blur], kernel_shape=[9, 9], pads=[4] * 4, count_include_pad=0)
    band = g.op("Mul", [g.op("Abs", [g.op("Sub", [blur, wide])]), on_product])
    band_flat = g.flat(band)
    bmed = g.op("Add", [g.kth_largest(band_flat, pixels // 2 + 1), eps])
    bmax_ratio = g.op("Div", [g.op("ReduceMax", [band_flat], axes=[1], keepdims=1), bmed])
    b99_ratio = g.op("Div", [g.kth_largest(band_flat, max(1, math.ceil(pixels * 0.01))), bmed])
    bcells = g.flat(g.op("AveragePool", [band], kernel_shape=[CELL] * 2, strides=[CELL] * 2))
    bcell_ratio = g.op(
        "Div",
        [
            g.op("ReduceMax", [bcells], axes=[1], keepdims=1),
            g.kth_largest(bcells, n_cells // 2 + 1),
        ],
    )
    gcell = g.flat(
        g.op(
            "AveragePool",
            [g.op("Reshape", [mag, g.const(np.array([0, 1, side, side]))])],
            kernel_shape=[CELL] * 2,
            strides=[CELL] * 2,
        )
    )
    gcell_ratio = g.op(
        "Div",
        [g.op("ReduceMax", [gcell], axes=[1], keepdims=1), g.kth_largest(gcell, n_cells // 2 + 1)],
    )
    ccells = g.op("AveragePool", [crop], kernel_shape=[CELL] * 2, strides=[CELL] * 2)
    cgrey = g.mean(ccells, [1])  # [N, 1, cells, cells]
    chroma = g.op("Reshape", [g.op("Sub", [ccells, cgrey]), g.const(np.array([0, 3, -1]))])
    chroma_med = g.kth_largest(chroma, n_cells // 2 + 1)  # [N, 3, 1]: the median cell
    chroma_dev = g.op(
        "ReduceMax", [g.op("Abs", [g.op("Sub", [chroma, chroma_med])])], axes=[1], keepdims=0
    )  # [N, cells]: per cell, the largest channel deviation from the median cell
    gcells = g.flat(cgrey)
    gdev = g.op("Sub", [gcells, g.kth_largest(gcells, n_cells // 2 + 1)])
    gdev_min = g.op("ReduceMin", [gdev], axes=[1], keepdims=1)
    gdev_max = g.op("ReduceMax", [gdev], axes=[1], keepdims=1)
    gdev_std = g.std(gdev, [1])
    level = g.op("Add", [grey_mean, eps])
    parts = [
        g.flat(grid),
        g.flat(crop_mean),
        g.flat(grey_mean),
        g.flat(grey_std),
        g.flat(lap_var),
        g.mean(resid_flat, [1]),
        g.op("Div", [p99, med]),
        g.op("Div", [rmax, med]),
        share,
        rcell_ratio,
        g99,
        gmax_ratio,
        g.op("ReduceMax", [chroma_dev], axes=[1], keepdims=1),
        g.mean(chroma_dev, [1]),
        gdev_min,
        gdev_max,
        g.flat(gdev_std),
        bmax_ratio,
        b99_ratio,
        bcell_ratio,
        gcell_ratio,
        *detector_features(g, grey_frame, valid, level, size, lo, hi),
        *shape_features(g, image, luma_kernel, (resid, band), (med, bmed), lo, hi, on_product),
    ]
    if texture:
        parts += texture_features(g, grey_frame, size)
        parts += grainfree_features(g, grey_frame, size)
    raw = g.op("Concat", parts, axis=1)
    g.nodes.append(helper.make_node("Identity", [finite(g, raw)], [OUTPUT]))
    graph = helper.make_graph(
        g.nodes,
        "linefleet-features",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [batch, 3, size, size])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [batch, feature_count(texture)])],
        g.inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="linefleet-trainer"
    )
    model.ir_version = IR_VERSION
    return model


FEATURE_LIMIT = 1e6


def finite(g: Graph, x: str) -> str:
    """`x` with NaN as 0 and every value within +-FEATURE_LIMIT. A black, white or flat frame
    (a lens cap, the lights off, a saturated or 12-bit frame read as 8) makes some ratios 0/0
    or x/0; unguarded, one such frame among the training frames stopped `linefleet train`
    (scikit-learn refuses non-finite input) and on the edge decided by NaN."""
    zero = g.const(np.array(0.0, np.float32), "zero")
    cleaned = g.op("Where", [g.op("IsNaN", [x]), zero, x])
    low = g.const(np.array(-FEATURE_LIMIT, np.float32), "feature_min")
    high = g.const(np.array(FEATURE_LIMIT, np.float32), "feature_max")
    return g.op("Clip", [cleaned, low, high])


def extract(model: Any, images: Any, batch: int = 256) -> Any:
    """Run the feature graph on float32 [N, 3, S, S] images; returns float32 [N, F]."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    out = [
        session.run([OUTPUT], {INPUT: images[i : i + batch]})[0]
        for i in range(0, len(images), batch)
    ]
    width = model.graph.output[0].type.tensor_type.shape.dim[1].dim_value
    return np.concatenate(out, axis=0) if out else np.zeros((0, width), np.float32)


def to_tensor(bgr: Any, height: int, width: int | None = None, color: str = "rgb") -> Any:
    """The model contract's preprocessing: BGR uint8 -> float32 [1, C, H, W] in [0, 1], resized
    as the edge resizes (`linefleet_core.modelio.interpolation`): a line-scan strip lower than
    the input was area-averaged here and interpolated there, a skew of 0.23 per pixel."""
    import cv2

    size = (width or height, height)
    inter = interpolation(bgr.shape[1], bgr.shape[0], *size)  # as the edge (contract v1)
    resized = cv2.resize(bgr, size, interpolation=inter)
    if color == "gray":
        converted = cv2.cvtColor(resized, cv2.COLOR_BGR2GRAY)[:, :, None]
    elif color == "rgb":
        converted = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
    else:
        converted = resized
    return (converted.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
