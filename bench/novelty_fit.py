"""A small input-novelty model for a line: Gaussian statistics of patch features, as ONNX.

Written for the logging benchmark (`bench/bench_logging.py`); fitting belongs to the trainer,
which can reuse this until it has its own (issue 20). The graph is an ordinary catalogue model
of task `anomaly` (model contract v2): input an RGB frame [1, 3, S, S] (`x / 255`), output
`score` [1, 1], higher = less normal; the frame is `novel` at or above `threshold`.

Features (all relative to the frame itself, so a per-frame gain, colour cast or lighting
gradient cancels): colour, log R/G and log B/G smoothed over 9x9 (clipped pixels left out)
minus the frame's mean, peak per 16x16 patch (a dent's added light, a particle's colour shift
a tinted surface); grey divided by the frame's mean, peak per 32x32 patch of its x/y
gradients (Sobel after a 5x5 mean), a band-pass (5x5 mean minus a wide mean: dents, smears)
and fine detail (pixel minus its 3x3 mean: hairlines), as log(value) minus the frame's mean
over patches. Fitting keeps each
feature's mean and standard deviation per patch position over the line's `ok` frames; the
score is the largest z-score (above normal) over all patches and features. The threshold is
the `1 - false_rate` quantile of the scores of `ok` frames held out of the fit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
EPS = 1e-6
CHROMA_PATCH = 16
GREY_PATCH = 32


@dataclass(frozen=True)
class NoveltyModel:
    data: bytes
    threshold: float
    size: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def _pool(op: str, src: str, dst: str, kernel: int, stride: int = 1) -> onnx.NodeProto:
    pad = (kernel - 1) // 2 if stride == 1 else 0
    extra = {"count_include_pad": 0} if op == "AveragePool" else {}
    return helper.make_node(
        op, [src], [dst], kernel_shape=[kernel, kernel], strides=[stride, stride],
        pads=[pad] * 4, **extra,
    )  # fmt: skip


def _const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, np.float32), name)


def _features() -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes from input `image` [1,3,S,S] (RGB, x/255) to `chroma` [1,2,S/16,S/16] and
    `grey` [1,4,S/32,S/32]."""
    sobel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)
    inits = [
        _const("eps", np.array(EPS)),
        _const("offset", np.array(0.01)),
        _const("clip", np.array(0.97)),
        _const("to_chroma", np.array([[1, -1, 0], [0, -1, 1]], np.float32)[:, :, None, None]),
        _const("to_grey", np.array([[0.299, 0.587, 0.114]], np.float32)[:, :, None, None]),
        _const("sobel", np.stack([sobel, sobel.T])[:, None]),
    ]
    nodes = [
        # colour: log R/G and log B/G, smoothed, minus the frame's own mean, peak per patch
        helper.make_node("Add", ["image", "offset"], ["lifted"]),
        helper.make_node("Log", ["lifted"], ["log_rgb"]),
        helper.make_node("Conv", ["log_rgb", "to_chroma"], ["chroma_raw"]),
        _pool("AveragePool", "chroma_raw", "chroma_smooth", 9),
        helper.make_node("ReduceMean", ["chroma_smooth"], ["chroma_mean"], axes=[2, 3]),
        helper.make_node("Sub", ["chroma_smooth", "chroma_mean"], ["chroma_dev"]),
        helper.make_node("Abs", ["chroma_dev"], ["chroma_all"]),
        # a clipped pixel (a channel at full scale) has no colour to judge: left out
        helper.make_node("ReduceMax", ["image"], ["brightest"], axes=[1], keepdims=1),
        _pool("MaxPool", "brightest", "near_clip", 5),
        helper.make_node("Less", ["near_clip", "clip"], ["unclipped"]),
        helper.make_node("Cast", ["unclipped"], ["unclipped_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["chroma_all", "unclipped_f"], ["chroma_abs"]),
        _pool("MaxPool", "chroma_abs", "chroma", CHROMA_PATCH, CHROMA_PATCH),
        # grey, divided by the frame's mean: gradients, a band-pass and fine detail
        helper.make_node("Conv", ["image", "to_grey"], ["grey_raw"]),
        helper.make_node("ReduceMean", ["grey_raw"], ["gain"], axes=[1, 2, 3]),
        helper.make_node("Add", ["gain", "eps"], ["gain_safe"]),
        helper.make_node("Div", ["grey_raw", "gain_safe"], ["g"]),
        _pool("AveragePool", "g", "g5", 5),
        helper.make_node("Conv", ["g5", "sobel"], ["gradients"], pads=[1, 1, 1, 1]),
        _pool("AveragePool", "g5", "g5_17", 17),
        _pool("AveragePool", "g5_17", "g_wide", 17),
        helper.make_node("Sub", ["g5", "g_wide"], ["band"]),
        _pool("AveragePool", "g", "g3", 3),
        helper.make_node("Sub", ["g", "g3"], ["fine"]),
        helper.make_node("Concat", ["gradients", "band", "fine"], ["grey_maps"], axis=1),
        helper.make_node("Abs", ["grey_maps"], ["grey_abs"]),
        _pool("MaxPool", "grey_abs", "grey_peak", GREY_PATCH, GREY_PATCH),
        helper.make_node("Add", ["grey_peak", "eps"], ["grey_safe"]),
        helper.make_node("Log", ["grey_safe"], ["grey_log"]),
        helper.make_node("ReduceMean", ["grey_log"], ["grey_level"], axes=[2, 3]),
        helper.make_node("Sub", ["grey_log", "grey_level"], ["grey"]),
    ]
    return nodes, inits


Stats = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, float]
"""Mean and standard deviation of the chroma, then the grey features, per patch position; then
each part's typical largest z-score on `ok` frames (the parts' scores are divided by it)."""


def _graph(size: int, stats: Stats | None) -> bytes:
    nodes, inits = _features()
    c, g = size // CHROMA_PATCH, size // GREY_PATCH
    if stats is None:
        outputs = [
            helper.make_tensor_value_info("chroma", TensorProto.FLOAT, [1, 2, c, c]),
            helper.make_tensor_value_info("grey", TensorProto.FLOAT, [1, 4, g, g]),
        ]
    else:
        names = ("chroma_mu", "chroma_sigma", "grey_mu", "grey_sigma")
        inits += [_const(n, v[None]) for n, v in zip(names, stats[:4], strict=True)]
        inits += [
            _const("chroma_scale", np.array(stats[4])),
            _const("grey_scale", np.array(stats[5])),
        ]
        for part in ("chroma", "grey"):
            nodes += [
                helper.make_node("Sub", [part, f"{part}_mu"], [f"{part}_c"]),
                helper.make_node("Div", [f"{part}_c", f"{part}_sigma"], [f"{part}_z"]),
                helper.make_node(
                    "ReduceMax", [f"{part}_z"], [f"{part}_max"], axes=[1, 2, 3], keepdims=1
                ),
                helper.make_node("Reshape", [f"{part}_max", "shape"], [f"{part}_flat"]),
                helper.make_node("Div", [f"{part}_flat", f"{part}_scale"], [f"{part}_score"]),
            ]
        inits.append(numpy_helper.from_array(np.array([1, 1], np.int64), "shape"))
        nodes.append(helper.make_node("Max", ["chroma_score", "grey_score"], ["score"]))
        outputs = [helper.make_tensor_value_info("score", TensorProto.FLOAT, [1, 1])]
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, size, size])
    graph = helper.make_graph(nodes, "novelty", [image], outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _run(data: bytes, tensors: list[np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    runs = [session.run(None, {"image": t}) for t in tensors]
    return [np.concatenate([r[k] for r in runs]) for k in range(len(runs[0]))]


def tensor(bgr: np.ndarray, size: int) -> np.ndarray:
    """The model's input for one BGR frame, exactly as the edge prepares it (contract v2)."""
    from linefleet_core.modelio import Contract, prepare

    contract = Contract(classes=("ok", "novel"), height=size, width=size)
    batch, _ = prepare(bgr, contract)
    return batch


def fit(
    ok_frames: list[np.ndarray], size: int = 128, false_rate: float = 0.02, held_out: float = 0.3
) -> NoveltyModel:
    """Fit on `ok` BGR frames; the threshold comes from the held-out share of them."""
    tensors = [tensor(f, size) for f in ok_frames]
    cut = int(len(tensors) * (1 - held_out))
    chroma, grey = _run(_graph(size, None), tensors[:cut])
    # a floor under each deviation: a position that never varied must not score infinity
    chroma_mu, chroma_sd = chroma.mean(0), chroma.std(0) + 1e-3
    grey_mu, grey_sd = grey.mean(0), grey.std(0) + 0.02
    held_chroma, held_grey = _run(_graph(size, None), tensors[cut:])
    axes = (1, 2, 3)
    scales = (
        float(np.quantile(((held_chroma - chroma_mu) / chroma_sd).max(axis=axes), 0.5)),
        float(np.quantile(((held_grey - grey_mu) / grey_sd).max(axis=axes), 0.5)),
    )
    data = _graph(size, (chroma_mu, chroma_sd, grey_mu, grey_sd, *scales))
    scores = _run(data, tensors[cut:])[0][:, 0]
    threshold = float(np.quantile(scores, 1 - false_rate))
    return NoveltyModel(data, round(threshold, 4), size)
