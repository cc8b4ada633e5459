"""An unsupervised novelty model per line: how far a frame is from the line's normal frames.

    model = fit_novelty(ok_train, ok_heldout, NoveltyConfig(size=64, false_alarm_rate=0.01))
    model.onnx        # bytes: image [1, 3, S, S] RGB in [0, 1] -> score [1, 1]
    model.threshold   # the (1 - false_alarm_rate) quantile of the held-out ok frames' scores
    model.score(x)    # scores of prepared inputs, from the artifact itself

The frame is cut into a grid of patches (`patch` pixels square). Each patch is described by
nine numbers computed inside the graph: the mean of each colour channel, the log of each
channel's standard deviation, and the log of the mean and of the largest gradient magnitude
and of the mean absolute Laplacian of its grey level (texture and edges). The fitter learns a
Gaussian per patch position (mean and covariance with Ledoit-Wolf shrinkage, so a few dozen
frames suffice) from the line's `ok` frames; a frame's score is the largest Mahalanobis
distance of any of its patches from its position's Gaussian (PaDiM's idea, with hand-made
features instead of a CNN's). A local defect moves one patch far; a frame from another
material, camera or light moves them all. The graph is plain ONNX (opset 17, default domain
only), so the edge needs onnxruntime and nothing else. The threshold comes from frames the
fit never saw: the line's held-out `ok` frames (the dataset's stable holdout split).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from linefleet_core.errors import PermanentError

OPSET = 17
INPUT = "image"
SCORE = "score"
FEATURES = "patch_features"
EPS = 1e-3
DIMS = 9


@dataclass(frozen=True)
class NoveltyConfig:
    size: int = 64
    """Frames are resized to size x size (the model's declared input)."""
    patch: int = 8
    """Patch side in input pixels; size must be a multiple of it."""
    false_alarm_rate: float = 0.01
    """The share of held-out ok frames allowed at or above the threshold."""

    def params(self) -> dict[str, Any]:
        return {
            "kind": "novelty",
            "features": "patch colour, texture and edge statistics",
            "input_size": self.size,
            "patch": self.patch,
            "false_alarm_rate": self.false_alarm_rate,
        }


@dataclass(frozen=True)
class NoveltyModel:
    onnx: bytes
    threshold: float
    heldout_scores: tuple[float, ...]
    train_frames: int

    def score(self, inputs: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """One score per prepared input ([N, 3, S, S] RGB in [0, 1]), from the artifact."""
        session = _session(self.onnx)
        return np.asarray(
            [session.run([SCORE], {INPUT: inputs[i : i + 1]})[0][0, 0] for i in range(len(inputs))],
            dtype=np.float32,
        )


def _session(data: bytes) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def _const(name: str, value: npt.ArrayLike, dtype: Any = np.float32) -> Any:
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def _feature_nodes(size: int, patch: int) -> tuple[list[Any], list[Any]]:
    """Nodes and constants from `image` [1, 3, S, S] to `patch_features` [1, DIMS, G, G]."""
    from onnx import helper

    pool: dict[str, Any] = {"kernel_shape": [patch, patch], "strides": [patch, patch]}
    sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32) / 8
    kernels = np.stack([sobel_x, sobel_x.T])[:, None]  # [2, 1, 3, 3]
    laplace = np.array([[[[0, 1, 0], [1, -4, 1], [0, 1, 0]]]], np.float32)
    consts = [
        _const("grey_w", [[[[0.299]], [[0.587]], [[0.114]]]]),
        _const("sobel_w", kernels),
        _const("laplace_w", laplace),
        _const("eps", [EPS]),
        _const("axis1", [1], np.int64),
    ]
    n = helper.make_node
    nodes = [
        n("AveragePool", [INPUT], ["p_mean"], **pool),
        n("Mul", [INPUT, INPUT], ["sq"]),
        n("AveragePool", ["sq"], ["p_sq"], **pool),
        n("Mul", ["p_mean", "p_mean"], ["p_mean_sq"]),
        n("Sub", ["p_sq", "p_mean_sq"], ["p_var_raw"]),
        n("Relu", ["p_var_raw"], ["p_var"]),
        n("Add", ["p_var", "eps"], ["p_var_eps"]),
        n("Log", ["p_var_eps"], ["p_logvar"]),
        n("Conv", [INPUT, "grey_w"], ["grey"]),
        n("Conv", ["grey", "sobel_w"], ["grad_xy"], pads=[1, 1, 1, 1]),
        n("Abs", ["grad_xy"], ["grad_abs"]),
        n("ReduceSum", ["grad_abs", "axis1"], ["grad"], keepdims=1),
        n("AveragePool", ["grad"], ["g_mean"], **pool),
        n("MaxPool", ["grad"], ["g_max"], **pool),
        n("Conv", ["grey", "laplace_w"], ["lap"], pads=[1, 1, 1, 1]),
        n("Abs", ["lap"], ["lap_abs"]),
        n("AveragePool", ["lap_abs"], ["l_mean"], **pool),
        n("Concat", ["g_mean", "g_max", "l_mean"], ["edges"], axis=1),
        n("Add", ["edges", "eps"], ["edges_eps"]),
        n("Log", ["edges_eps"], ["log_edges"]),
        n("Concat", ["p_mean", "p_logvar", "log_edges"], [FEATURES], axis=1),
    ]
    return nodes, consts


def _graph(size: int, patch: int, tail: list[Any], tail_consts: list[Any], output: Any) -> bytes:
    import onnx
    from onnx import TensorProto, helper

    nodes, consts = _feature_nodes(size, patch)
    graph = helper.make_graph(
        nodes + tail,
        "linefleet-novelty",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [1, 3, size, size])],
        [output],
        initializer=consts + tail_consts,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="linefleet-trainer"
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return bytes(model.SerializeToString())


def feature_model(size: int, patch: int) -> bytes:
    """The features alone ([1, DIMS, G, G]): what the fitter learns from."""
    from onnx import TensorProto, helper

    grid = size // patch
    out = helper.make_tensor_value_info(FEATURES, TensorProto.FLOAT, [1, DIMS, grid, grid])
    return _graph(size, patch, [], [], out)


def novelty_model(
    size: int, patch: int, mean: npt.NDArray[np.float64], precision: npt.NDArray[np.float64]
) -> bytes:
    """The scoring graph: `mean` [P, DIMS] and `precision` [P, DIMS, DIMS] per patch position
    (row by row) -> `score` [1, 1], the largest Mahalanobis distance of a patch."""
    from onnx import TensorProto, helper

    positions = (size // patch) ** 2
    n = helper.make_node
    consts = [
        _const("flat_shape", [DIMS, positions], np.int64),
        _const("mu", mean),
        _const("precision", precision),
        _const("axis2", [2], np.int64),
        _const("score_shape", [1, 1], np.int64),
    ]
    tail = [
        n("Reshape", [FEATURES, "flat_shape"], ["flat"]),
        n("Transpose", ["flat"], ["rows"], perm=[1, 0]),  # [P, DIMS]
        n("Sub", ["rows", "mu"], ["delta"]),
        n("Unsqueeze", ["delta", "axis1"], ["delta_row"]),  # [P, 1, DIMS]
        n("MatMul", ["delta_row", "precision"], ["weighted"]),  # [P, 1, DIMS]
        n("Mul", ["weighted", "delta_row"], ["terms"]),
        n("ReduceSum", ["terms", "axis2"], ["d2"], keepdims=0),  # [P, 1]
        n("Relu", ["d2"], ["d2_pos"]),
        n("Sqrt", ["d2_pos"], ["distance"]),
        n("ReduceMax", ["distance"], ["worst"], keepdims=0),
        n("Reshape", ["worst", "score_shape"], [SCORE]),
    ]
    out = helper.make_tensor_value_info(SCORE, TensorProto.FLOAT, [1, 1])
    return _graph(size, patch, tail, consts, out)


def patch_features(inputs: npt.NDArray[np.float32], size: int, patch: int) -> npt.NDArray[Any]:
    """[N, P, DIMS]: every input's patch features, computed by the same graph the edge runs."""
    session = _session(feature_model(size, patch))
    rows = [session.run([FEATURES], {INPUT: inputs[i : i + 1]})[0][0] for i in range(len(inputs))]
    stacked = np.stack(rows)  # [N, DIMS, G, G]
    return np.asarray(stacked.reshape(len(rows), DIMS, -1).transpose(0, 2, 1), np.float64)


def gaussians(
    features: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Mean [P, DIMS] and precision [P, DIMS, DIMS] per position (Ledoit-Wolf shrinkage)."""
    from sklearn.covariance import LedoitWolf

    _, positions, dims = features.shape
    mean = features.mean(axis=0)
    precision = np.empty((positions, dims, dims))
    for p in range(positions):
        cov = LedoitWolf().fit(features[:, p, :]).covariance_
        cov += np.eye(dims) * 1e-6 * max(1.0, float(np.trace(cov)) / dims)
        precision[p] = np.linalg.inv(cov)
    return mean, precision


def threshold_for(scores: Sequence[float], false_alarm_rate: float) -> float:
    """The smallest score at or above which at most `false_alarm_rate` of `scores` fall
    (the higher (1 - rate) quantile; with n scores the smallest rate reachable is 1/n, and
    below that the threshold is the largest score, nudged up so none of them is flagged)."""
    ordered = sorted(float(s) for s in scores)
    allowed = int(np.floor(false_alarm_rate * len(ordered)))
    if allowed == 0:
        top = ordered[-1]
        return float(np.nextafter(np.float32(top), np.float32(np.inf)))
    return ordered[len(ordered) - allowed]


MIN_FIT_FRAMES = 10
MIN_HELDOUT_FRAMES = 5


def fit_novelty(
    train: npt.NDArray[np.float32], heldout: npt.NDArray[np.float32], config: NoveltyConfig
) -> NoveltyModel:
    """Fit on `train` ok inputs ([N, 3, S, S] RGB in [0, 1]); choose the threshold on
    `heldout` ok inputs the fit never saw."""
    if config.size % config.patch:
        raise PermanentError(f"size {config.size} is not a multiple of patch {config.patch}")
    if not 0 < config.false_alarm_rate < 1:
        raise PermanentError("the false-alarm rate is a fraction in (0, 1)")
    if len(train) < MIN_FIT_FRAMES:
        raise PermanentError(
            f"{len(train)} ok frame(s) to fit on; a novelty model needs at least {MIN_FIT_FRAMES}"
        )
    if len(heldout) < MIN_HELDOUT_FRAMES:
        raise PermanentError(
            f"{len(heldout)} held-out ok frame(s); the threshold needs at least "
            f"{MIN_HELDOUT_FRAMES}"
        )
    mean, precision = gaussians(patch_features(train, config.size, config.patch))
    data = novelty_model(config.size, config.patch, mean, precision)
    model = NoveltyModel(data, 0.0, (), len(train))
    scores = tuple(float(s) for s in model.score(heldout))
    return NoveltyModel(data, threshold_for(scores, config.false_alarm_rate), scores, len(train))
