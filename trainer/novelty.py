"""An unsupervised novelty model per line: how far a frame is from the line's normal frames.

    model = fit_novelty(ok_train, ok_heldout, NoveltyConfig(size=128, false_alarm_rate=0.01))
    model.onnx        # bytes: image [1, 3, S, S] RGB in [0, 1] -> score [1, 1]
    model.threshold   # the (1 - false_alarm_rate) quantile of the held-out ok frames' scores
    model.score(x)    # scores of prepared inputs, from the artifact itself

The score is the largest of three parts, each divided by its median on held-out ok frames (so
1 is a typical normal frame for every part):

- **patch statistics** (what tells a frame of another material, camera or light): the frame
  is cut into a grid of patches (`patch` pixels square), each described by nine numbers: the
  mean of each colour channel, the log of each channel's standard deviation, and the log of the
  mean and of the largest gradient magnitude and of the mean absolute Laplacian of its grey
  level. A Gaussian per patch position (mean and covariance with Ledoit-Wolf shrinkage, so a
  few dozen frames suffice) is learnt from the line's `ok` frames; the part is the largest
  Mahalanobis distance of a patch from its position's Gaussian (PaDiM's idea with hand-made
  features instead of a CNN's). A foreign frame moves every patch.
- **colour deviation** (what tells a small defect of another colour): log R/G and log B/G per
  pixel, smoothed over 9x9, minus the frame's own mean (so a colour cast or gain cancels;
  pixels near clipping are left out), the largest absolute value per 16x16 block.
- **grey deviation** (what tells a scratch, a dent or a particle on a busy texture): grey
  divided by the frame's mean level, then per 32x32 block the peak of its x/y gradients after a
  5x5 mean, of a band-pass (5x5 mean minus a wide mean) and of fine detail (pixel minus its
  3x3 mean), as logs minus the frame's mean log over blocks.

For the two deviation maps the fitter keeps each value's mean and standard deviation per block
position over the `ok` frames; the part is the largest z-score above normal. A local defect
lifts one block's deviation far above what that block shows on normal frames, where the
patch statistics of a whole 16x16 patch barely move. The graph is plain ONNX (opset 17,
default domain only), so the edge needs onnxruntime and nothing else. The held-out `ok` frames
(the dataset's stable holdout split, never fitted on) give each part's scale and the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from linefleet_core.errors import PermanentError

OPSET = 17
INPUT = "image"
SCORE = "score"
FEATURES = "patch_features"
CHROMA = "colour_deviation"
GREY = "grey_deviation"
EPS = 1e-3
DIMS = 9
CHROMA_BLOCK = 16
GREY_BLOCK = 32
"""Block sides of the deviation maps in input pixels: the input size must be a multiple of
GREY_BLOCK."""
CHROMA_FLOOR = 1e-3
GREY_FLOOR = 0.02
"""Floors under the deviation maps' standard deviations: a block that never varied on the ok
frames must not score infinity."""


@dataclass(frozen=True)
class NoveltyConfig:
    size: int = 128
    """Frames are resized to size x size (the model's declared input); a multiple of 32."""
    patch: int = 16
    """Patch side in input pixels of the patch statistics; size must be a multiple of it."""
    false_alarm_rate: float = 0.01
    """The share of held-out ok frames allowed at or above the threshold."""

    def params(self) -> dict[str, Any]:
        return {
            "kind": "novelty",
            "features": "patch colour, texture and edge statistics; colour and grey deviation maps",
            "input_size": self.size,
            "patch": self.patch,
            "false_alarm_rate": self.false_alarm_rate,
        }


@dataclass(frozen=True)
class Statistics:
    """What the fit learnt, as the graph holds it."""

    mean: npt.NDArray[np.float64]
    """[P, DIMS] patch feature means, patch positions row by row."""
    precision: npt.NDArray[np.float64]
    """[P, DIMS, DIMS] their inverse covariances."""
    chroma_mu: npt.NDArray[np.float64]
    """[2, S/16, S/16] colour deviation means; then its standard deviations."""
    chroma_sd: npt.NDArray[np.float64]
    grey_mu: npt.NDArray[np.float64]
    """[4, S/32, S/32] grey deviation means; then its standard deviations."""
    grey_sd: npt.NDArray[np.float64]
    scales: tuple[float, float, float]
    """Median over held-out ok frames of the patch, colour and grey parts."""


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


def _pool(op: str, src: str, dst: str, kernel: int, stride: int = 1) -> Any:
    """A pool keeping the map's size (stride 1, padded, padding not counted) or a block pool."""
    from onnx import helper

    pad = (kernel - 1) // 2 if stride == 1 else 0
    extra: dict[str, Any] = {"count_include_pad": 0} if op == "AveragePool" else {}
    return helper.make_node(
        op, [src], [dst], kernel_shape=[kernel, kernel], strides=[stride, stride],
        pads=[pad] * 4, **extra,
    )  # fmt: skip


def _patch_nodes(patch: int) -> tuple[list[Any], list[Any]]:
    """`image` [1, 3, S, S] -> `patch_features` [1, DIMS, G, G] (and `grey` [1, 1, S, S])."""
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


def _deviation_nodes() -> tuple[list[Any], list[Any]]:
    """`image` and `grey` -> `colour_deviation` [1, 2, S/16, S/16] and `grey_deviation`
    [1, 4, S/32, S/32], each relative to the frame itself."""
    from onnx import TensorProto, helper

    sobel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)
    consts = [
        _const("tiny", 1e-6),
        _const("offset", 0.01),
        _const("clip", 0.97),
        _const("to_chroma", np.array([[1, -1, 0], [0, -1, 1]], np.float32)[:, :, None, None]),
        _const("sobel", np.stack([sobel, sobel.T])[:, None]),
    ]
    n = helper.make_node
    nodes = [
        # colour: log R/G and log B/G, smoothed, minus the frame's own mean, peak per block
        n("Add", [INPUT, "offset"], ["lifted"]),
        n("Log", ["lifted"], ["log_rgb"]),
        n("Conv", ["log_rgb", "to_chroma"], ["chroma_raw"]),
        _pool("AveragePool", "chroma_raw", "chroma_smooth", 9),
        n("ReduceMean", ["chroma_smooth"], ["chroma_mean"], axes=[2, 3]),
        n("Sub", ["chroma_smooth", "chroma_mean"], ["chroma_dev"]),
        n("Abs", ["chroma_dev"], ["chroma_all"]),
        # a pixel near clipping (a channel at full scale) has no colour to judge: left out
        n("ReduceMax", [INPUT], ["brightest"], axes=[1], keepdims=1),
        _pool("MaxPool", "brightest", "near_clip", 5),
        n("Less", ["near_clip", "clip"], ["unclipped"]),
        n("Cast", ["unclipped"], ["unclipped_f"], to=TensorProto.FLOAT),
        n("Mul", ["chroma_all", "unclipped_f"], ["chroma_abs"]),
        _pool("MaxPool", "chroma_abs", CHROMA, CHROMA_BLOCK, CHROMA_BLOCK),
        # grey over the frame's mean level: gradients, a band-pass and fine detail
        n("ReduceMean", ["grey"], ["gain"], axes=[1, 2, 3]),
        n("Add", ["gain", "tiny"], ["gain_safe"]),
        n("Div", ["grey", "gain_safe"], ["g"]),
        _pool("AveragePool", "g", "g5", 5),
        n("Conv", ["g5", "sobel"], ["gradients"], pads=[1, 1, 1, 1]),
        _pool("AveragePool", "g5", "g5_17", 17),
        _pool("AveragePool", "g5_17", "g_wide", 17),
        n("Sub", ["g5", "g_wide"], ["band"]),
        _pool("AveragePool", "g", "g3", 3),
        n("Sub", ["g", "g3"], ["fine"]),
        n("Concat", ["gradients", "band", "fine"], ["grey_maps"], axis=1),
        n("Abs", ["grey_maps"], ["grey_abs"]),
        _pool("MaxPool", "grey_abs", "grey_peak", GREY_BLOCK, GREY_BLOCK),
        n("Add", ["grey_peak", "tiny"], ["grey_safe"]),
        n("Log", ["grey_safe"], ["grey_log"]),
        n("ReduceMean", ["grey_log"], ["grey_level"], axes=[2, 3]),
        n("Sub", ["grey_log", "grey_level"], [GREY]),
    ]
    return nodes, consts


def _graph(
    size: int, patch: int, tail: list[Any], tail_consts: list[Any], outputs: list[Any]
) -> bytes:
    import onnx
    from onnx import TensorProto, helper

    nodes, consts = _patch_nodes(patch)
    dev_nodes, dev_consts = _deviation_nodes()
    graph = helper.make_graph(
        nodes + dev_nodes + tail,
        "linefleet-novelty",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [1, 3, size, size])],
        outputs,
        initializer=consts + dev_consts + tail_consts,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="linefleet-trainer"
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return bytes(model.SerializeToString())


def feature_model(size: int, patch: int) -> bytes:
    """The features alone: `patch_features` [1, DIMS, G, G], `colour_deviation`
    [1, 2, S/16, S/16] and `grey_deviation` [1, 4, S/32, S/32]: what the fitter learns from."""
    from onnx import TensorProto, helper

    grid = size // patch
    outs = [
        helper.make_tensor_value_info(FEATURES, TensorProto.FLOAT, [1, DIMS, grid, grid]),
        helper.make_tensor_value_info(
            CHROMA, TensorProto.FLOAT, [1, 2, *[size // CHROMA_BLOCK] * 2]
        ),
        helper.make_tensor_value_info(GREY, TensorProto.FLOAT, [1, 4, *[size // GREY_BLOCK] * 2]),
    ]
    return _graph(size, patch, [], [], outs)


def _part_nodes(stats: Statistics, positions: int) -> tuple[list[Any], list[Any]]:
    """The three parts' raw values: `patch_part`, `colour_part`, `grey_part`, each [1, 1]."""
    from onnx import helper

    n = helper.make_node
    consts = [
        _const("flat_shape", [DIMS, positions], np.int64),
        _const("mu", stats.mean),
        _const("precision", stats.precision),
        _const("axis2", [2], np.int64),
        _const("score_shape", [1, 1], np.int64),
        _const(f"{CHROMA}_mu", stats.chroma_mu[None]),
        _const(f"{CHROMA}_sd", stats.chroma_sd[None]),
        _const(f"{GREY}_mu", stats.grey_mu[None]),
        _const(f"{GREY}_sd", stats.grey_sd[None]),
    ]
    nodes = [
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
        n("Reshape", ["worst", "score_shape"], ["patch_part"]),
    ]
    for source, part in ((CHROMA, "colour_part"), (GREY, "grey_part")):
        nodes += [
            n("Sub", [source, f"{source}_mu"], [f"{source}_c"]),
            n("Div", [f"{source}_c", f"{source}_sd"], [f"{source}_z"]),
            n("ReduceMax", [f"{source}_z"], [f"{source}_max"], axes=[1, 2, 3], keepdims=1),
            n("Reshape", [f"{source}_max", "score_shape"], [part]),
        ]
    return nodes, consts


PARTS = ("patch_part", "colour_part", "grey_part")


def parts_model(size: int, patch: int, stats: Statistics) -> bytes:
    """The three parts' raw values, before their scales (what the fitter scales by)."""
    from onnx import TensorProto, helper

    nodes, consts = _part_nodes(stats, (size // patch) ** 2)
    outs = [helper.make_tensor_value_info(p, TensorProto.FLOAT, [1, 1]) for p in PARTS]
    return _graph(size, patch, nodes, consts, outs)


def novelty_model(size: int, patch: int, stats: Statistics) -> bytes:
    """The scoring graph: `score` [1, 1], the largest of the three parts over its scale."""
    from onnx import TensorProto, helper

    nodes, consts = _part_nodes(stats, (size // patch) ** 2)
    n = helper.make_node
    for part, scale in zip(PARTS, stats.scales, strict=True):
        consts.append(_const(f"{part}_scale", scale))
        nodes.append(n("Div", [part, f"{part}_scale"], [f"{part}_scaled"]))
    nodes.append(n("Max", [f"{p}_scaled" for p in PARTS], [SCORE]))
    out = helper.make_tensor_value_info(SCORE, TensorProto.FLOAT, [1, 1])
    return _graph(size, patch, nodes, consts, [out])


def _outputs(data: bytes, names: Sequence[str], inputs: npt.NDArray[np.float32]) -> list[Any]:
    session = _session(data)
    runs = [session.run(list(names), {INPUT: inputs[i : i + 1]}) for i in range(len(inputs))]
    return [np.concatenate([r[k] for r in runs]).astype(np.float64) for k in range(len(names))]


def features(
    inputs: npt.NDArray[np.float32], size: int, patch: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Every input's patch features [N, P, DIMS], colour deviation [N, 2, S/16, S/16] and grey
    deviation [N, 4, S/32, S/32], computed by the same graph the edge runs."""
    stacked, chroma, grey = _outputs(feature_model(size, patch), (FEATURES, CHROMA, GREY), inputs)
    patches = stacked.reshape(len(inputs), DIMS, -1).transpose(0, 2, 1)
    return np.ascontiguousarray(patches), chroma, grey


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


def check(config: NoveltyConfig) -> None:
    if config.size < GREY_BLOCK or config.size % GREY_BLOCK or config.size % config.patch:
        raise PermanentError(
            f"size {config.size} is not a multiple of patch {config.patch} and of {GREY_BLOCK}"
        )
    if not 0 < config.false_alarm_rate < 1:
        raise PermanentError("the false-alarm rate is a fraction in (0, 1)")


def fit_statistics(
    train: npt.NDArray[np.float32], heldout: npt.NDArray[np.float32], config: NoveltyConfig
) -> Statistics:
    """The statistics of the `train` inputs; each part's scale from the `heldout` inputs."""
    patches, chroma, grey = features(train, config.size, config.patch)
    mean, precision = gaussians(patches)
    unscaled = Statistics(
        mean, precision, chroma.mean(0), chroma.std(0) + CHROMA_FLOOR,
        grey.mean(0), grey.std(0) + GREY_FLOOR, (1.0, 1.0, 1.0),
    )  # fmt: skip
    raw = _outputs(parts_model(config.size, config.patch, unscaled), PARTS, heldout)
    # a part that is zero on every held-out frame keeps scale 1 (it cannot be divided by zero)
    scales = tuple(float(np.median(r)) if np.median(r) > 0 else 1.0 for r in raw)
    return replace(unscaled, scales=(scales[0], scales[1], scales[2]))


def fit_novelty(
    train: npt.NDArray[np.float32], heldout: npt.NDArray[np.float32], config: NoveltyConfig
) -> NoveltyModel:
    """Fit on `train` ok inputs ([N, 3, S, S] RGB in [0, 1]); scale the parts and choose the
    threshold on `heldout` ok inputs the fit never saw."""
    check(config)
    if len(train) < MIN_FIT_FRAMES:
        raise PermanentError(
            f"{len(train)} ok frame(s) to fit on; a novelty model needs at least {MIN_FIT_FRAMES}"
        )
    if len(heldout) < MIN_HELDOUT_FRAMES:
        raise PermanentError(
            f"{len(heldout)} held-out ok frame(s); the threshold needs at least "
            f"{MIN_HELDOUT_FRAMES}"
        )
    stats = fit_statistics(train, heldout, config)
    data = novelty_model(config.size, config.patch, stats)
    model = NoveltyModel(data, 0.0, (), len(train))
    scores = tuple(float(s) for s in model.score(heldout))
    return NoveltyModel(data, threshold_for(scores, config.false_alarm_rate), scores, len(train))
