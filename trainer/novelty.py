"""An unsupervised novelty model per line: how far a frame is from the line's normal frames.

    model = fit_novelty(ok_train, ok_heldout, NoveltyConfig(size=128, false_alarm_rate=0.01))
    model.onnx        # bytes: image [1, 3, S, S] RGB in [0, 1] -> score [1, 1]
    model.threshold   # the fit frames' out-of-fold scores' tail at the false-alarm rate
    model.heldout_scores  # ok_heldout's scores: an independent false-alarm check
    model.score(x)    # scores of prepared inputs, from the artifact itself

Six parts, each measured against the line's `ok` frames (the patch descriptor counts twice:
as it is, and minus its frame's mean descriptor, where a local defect stands out even in a
frame whose every patch moved a little):

- **patch descriptor** (PaDiM's idea with hand-made local features instead of a CNN's): the
  frame is cut into overlapping patches (`patch` pixels square, half a patch apart), each
  described by `DIMS` numbers: the mean of each colour channel and the log of its variance;
  on the grey level divided by the frame's mean level (so a gain cancels), the log mean energy
  of the gradient in four orientations, of the Laplacian, of a band-pass (a 5x5 mean minus a
  wide mean: shading a few pixels across, such as a dent) and of fine detail (a pixel minus
  its 3x3 mean: hairlines, particles), the log of the largest band-pass, fine-detail and
  gradient energy in the patch, and the patch's mean log R/G and log B/G relative to the
  frame's. A Gaussian per patch position (mean and covariance from that position and its
  neighbours, Ledoit-Wolf shrinkage) is learnt from the `ok` frames; the part is the largest
  mean, over 3 x 3 neighbouring positions, of the patches' Mahalanobis distances. A foreign
  frame moves every patch; a local defect moves the orientation balance or the peaks of the
  few patches over it.
- **colour deviation** (a small defect of another colour): log R/G and log B/G per pixel,
  smoothed over 9x9, minus the frame's own mean (a colour cast or gain cancels; pixels near
  clipping are left out), the largest absolute value per 16x16 block, as a z-score against
  that block's mean and standard deviation over the `ok` frames; the part is the largest.
- **grey deviation** (a scratch, a dent or a particle on a busy texture): per 32x32 block the
  peak of the x/y gradients after a 5x5 mean, of the band-pass and of the fine detail, as logs
  minus the frame's mean log over blocks, z-scored per block the same way.

- **frame colour** (a camera that went grey, a channel order swapped, a colour frame on a grey
  line): the frame's mean log R/G and log B/G and the log of their variance over its pixels
  (a grey frame has none: three equal channels, where a colour camera's own sensor noise gives
  every frame some), against one Gaussian of the ok frames (COLOUR_FLOOR under its deviations);
  the part is the Mahalanobis distance. Every other part judges colour relative to the frame's
  own (a cast cancels), or the grey level, so a grey frame scored below the threshold.
- **grain-free neighbourhoods** (a shallow dent or a soft stain on a grained or mottled
  surface): the frame without its grain (`trainer.grainfree.grain_free`: each pixel of the
  ~64 px grey level minus its mean along a short line in the direction of least residual, so a
  directional grain cancels and a shallow dent stays), blurred at blob scale, sampled as 7 x 7
  neighbourhoods (samples 2 px apart, every 4 px); a Gaussian per position as for the patch
  descriptor, the part the same smoothed largest distance. The other parts judge energies and
  peaks, which a dent the size and contrast of the surface's own mottling does not move; its
  shape (a lit rim beside a shadowed one) is what the camera's normal neighbourhoods rarely
  show, and a per-camera covariance of the raw neighbourhood is what tells it apart.

The parts are combined on a common scale where the threshold lives, their upper tails: each
part's log over the calibration scores (below) is modelled as the threshold is (`threshold_for`):
its largest tenth (at least TAIL_MIN_ABOVE frames) as exponential above the edge u of that
tenth, with scale b the mean excess over u; the standardised part is (log - u) / b, so at any
value z every part's normal frames exceed it about equally often (a tenth of them times e^-z),
and the score is exp(the largest standardised part) (1 = a frame at the edge of its most
deviating part's top tenth; positive, as the anomaly contract needs). No part with a long normal
tail sets the threshold for the others, and none whose normal frames barely vary hides. The
previous scale, (log - median) over the distance from the median to the 95% quantile in units
of the normal's, judged each part by its bulk and assumed a normal tail beyond the 95%
quantile; a part whose far tail was heavier than that (the patch descriptor's, relative to the
frame) reached the largest values on normal frames and set the threshold, and the grain-free
part, which alone flagged 0.90 of brushed-metal dents at no false alarm on fresh frames,
flagged 0.60 inside the combined score (docs/benchmarks.md). Spread from the bulk (the median
absolute deviation, before that) was worse still: woven dents flagged 0.22 of the time.

The standardisation and the threshold (`threshold_for`: at the false-alarm rate, from a tail
model of the scores) come from scores of ok frames the statistics scoring them never saw: every
fit frame scored out of fold (cross-fitting: the fit frames split FOLDS ways, each fold scored
by statistics of the others). The threshold's scores are out of fold twice: each frame's parts
are standardised by the other folds' tails (`cross_standardised`), so neither the statistics
nor the standardisation saw the frames it is chosen on; and the tail model allows for its
scale being an estimate (`predictive_excess`). Scored by a standardisation fitted to their
own tails, the fit frames looked more normal than fresh ones: at 1% asked the threshold
flagged 1.5% of fresh ok frames on average over 24 draws (6 lines, 200 fit frames, 1000 fresh
frames each), and conformal's order statistic on the same scores 1.4%.
A quantile on a held-out few alone (60-120 frames) missed the asked rate by half or more; on
every fit frame it lands near it (fold statistics see 9/10 of the frames, so they err slightly
high, towards fewer false alarms: with 5 folds, 1.3% of fresh frames where 5% was asked at 120
fit frames; with 10, 3%). The held-out `ok` frames (the dataset's stable holdout split) take no
part in any of it: scored by the artifact, they check the false-alarm rate independently. The
graph is plain ONNX (opset 17, default domain only), so the edge needs onnxruntime and nothing
else.
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
LOCAL = "local_features"
GRAINFREE = "grainfree_neighbourhoods"
FRAME_COLOUR = "frame_colour"
EPS = 1e-3
ENERGY_EPS = 1e-6
DIMS = 17
CHROMA_BLOCK = 16
GREY_BLOCK = 32
"""Block sides of the deviation maps in input pixels: the input size must be a multiple of
GREY_BLOCK."""
CHROMA_FLOOR = 1e-3
GREY_FLOOR = 0.02
"""Floors under the deviation maps' standard deviations: a block that never varied on the ok
frames must not score infinity."""
SPREAD_FLOOR = 0.02
"""Floor under a part's spread (of its log over out-of-fold frames)."""
TAIL_MIN_ABOVE = 10
"""At least this many calibration frames (when there are more) make a part's tail, and the
threshold's tail model (`TAIL_SHARE`)."""
Z_CAP = 40.0
"""The largest standardised part the score's exp is taken of (a frame far beyond any threshold
must not overflow to infinity)."""
SMOOTH = 3
"""The patch parts take the largest mean of the distance map over SMOOTH x SMOOTH positions
(a window of 2 patches, 32 px at patch 16), not the largest single distance: a small,
low-contrast blob moves the few overlapping patches that cover it together, while a normal
frame's largest distance is one patch's noise. On the benchmark lines this caught most of the
dents and contamination the single largest distance missed, at the same false alarms."""
NEIGHBOURS = 1
"""A position's Gaussian learns from the positions up to this far away in the grid too."""
GF_SIGMA = 1.0
"""Blur of the grain-free frame (`trainer.grainfree.grain_free`, about 64 px) before its
neighbourhoods are sampled, in its pixels: pixel noise averages out, a blob the size of a dent
and its rims' shape stay (at 1.5 the rims of the smaller dents blurred into the mottling: on
dev draws of the independent source the part alone flagged 0.90 of brushed-metal dents at
1.5, 0.93 at 1.0)."""
GF_SIDE = 7
GF_DILATION = 2
"""A grain-free neighbourhood: GF_SIDE x GF_SIDE samples GF_DILATION pixels apart (13 of the
~64 px map, a fifth of the frame across: a dent and its surroundings). Samples 2 px apart
rather than 5 x 5 at 3 px: the same span, densely enough that the covariance sees a dent's
rims (woven-fabric dents alone 0.42 -> 0.77 on dev draws, brushed 0.90 -> 0.92; 49 numbers
per position instead of 25)."""
GF_STRIDE = 4
"""Neighbourhood positions, in pixels of the ~64 px map."""
GF_DIMS = GF_SIDE * GF_SIDE
COLOUR_DIMS = 4
"""The frame's colour: its mean log R/G and log B/G, and the log of their variance over its
pixels (`FRAME_COLOUR`)."""
COLOUR_VAR_EPS = 1e-6
"""Added to the pixels' log-colour variance before its log: a frame with three equal channels
(grey) has none, and its log must stay finite."""
COLOUR_FLOOR = (0.02, 0.02, 0.1, 0.1)
"""Floors under the frame colour's standard deviations (log R/G and log B/G, their log
variances), added to its covariance's diagonal: on a grey camera every ok frame has the same
colour (none), and a change smaller than 2% in a channel's ratio, or than 10% in the
variance, is not a different camera."""


@dataclass(frozen=True)
class NoveltyConfig:
    size: int = 128
    """Frames are resized to size x size (the model's declared input); a multiple of 32."""
    patch: int = 16
    """Patch side in input pixels of the patch descriptor; size must be a multiple of it."""
    false_alarm_rate: float = 0.01
    """The share of ok frames allowed at or above the threshold (chosen on the fit frames'
    out-of-fold scores)."""

    @property
    def stride(self) -> int:
        return max(1, self.patch // 2)

    @property
    def grid(self) -> int:
        """Patch positions per side."""
        return (self.size - self.patch) // self.stride + 1

    @property
    def gf_grid(self) -> int:
        """Grain-free neighbourhood positions per side."""
        from trainer.grainfree import pool_factor

        side = self.size // pool_factor(self.size)  # the grain-free map's side
        return (side - GF_DILATION * (GF_SIDE - 1) - 1) // GF_STRIDE + 1

    def params(self) -> dict[str, Any]:
        return {
            "kind": "novelty",
            "features": "patch colour, oriented gradient, band-pass and detail statistics; "
            "colour and grey deviation maps; grain-free neighbourhoods; the frame's colour; "
            "parts standardised on the fit frames scored out of fold, the threshold on them "
            "standardised out of fold too (predictive exponential tail)",
            "input_size": self.size,
            "patch": self.patch,
            "stride": self.stride,
            "false_alarm_rate": self.false_alarm_rate,
        }


@dataclass(frozen=True)
class Statistics:
    """What the fit learnt, as the graph holds it."""

    mean: npt.NDArray[np.float64]
    """[P, DIMS] patch descriptor means, patch positions row by row."""
    precision: npt.NDArray[np.float64]
    """[P, DIMS, DIMS] their inverse covariances."""
    local_mean: npt.NDArray[np.float64]
    """[P, DIMS] means of the descriptors minus their frame's mean descriptor; then their
    inverse covariances [P, DIMS, DIMS]."""
    local_precision: npt.NDArray[np.float64]
    chroma_mu: npt.NDArray[np.float64]
    """[2, S/16, S/16] colour deviation means; then its standard deviations."""
    chroma_sd: npt.NDArray[np.float64]
    grey_mu: npt.NDArray[np.float64]
    """[4, S/32, S/32] grey deviation means; then its standard deviations."""
    grey_sd: npt.NDArray[np.float64]
    gf_mean: npt.NDArray[np.float64]
    """[Pg, GF_DIMS] grain-free neighbourhood means, positions row by row; then their inverse
    covariances [Pg, GF_DIMS, GF_DIMS]."""
    gf_precision: npt.NDArray[np.float64]
    colour_mean: npt.NDArray[np.float64]
    """[COLOUR_DIMS] the frame colour's mean; then its inverse covariance (Ledoit-Wolf, with
    COLOUR_FLOOR under its deviations) [COLOUR_DIMS, COLOUR_DIMS]."""
    colour_precision: npt.NDArray[np.float64]
    loc: tuple[float, ...]
    """Each part's (`PARTS`) tail edge: of the logs of the fit frames' out-of-fold parts, the
    one just below their largest tenth (`standardise`)."""
    spread: tuple[float, ...]
    """Their tail scales (`standardise`; at least SPREAD_FLOOR)."""


@dataclass(frozen=True)
class NoveltyModel:
    onnx: bytes
    threshold: float
    heldout_scores: tuple[float, ...]
    """The held-out ok frames' scores, from the artifact: frames the fit, the standardisation
    and the threshold never saw (an independent check of the false-alarm rate)."""
    train_frames: int
    calibration_scores: tuple[float, ...] = ()
    """The scores the threshold was chosen on: every fit frame's out-of-fold parts, standardised
    without its fold (`cross_standardised`)."""

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


def _maps_nodes() -> tuple[list[Any], list[Any]]:
    """`image` -> the per-pixel maps both the descriptor and the deviation maps read: `grey`,
    `g` (grey over the frame's mean level), `g5`, `band`, `fine`, `chroma_raw`, `chroma_smooth`
    and the deviation maps `colour_deviation` [1, 2, S/16, S/16] and `grey_deviation`
    [1, 4, S/32, S/32], each relative to the frame itself; and the frame's own colour,
    `frame_colour` [1, COLOUR_DIMS]."""
    from onnx import TensorProto, helper

    sobel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)
    consts = [
        _const("grey_w", [[[[0.299]], [[0.587]], [[0.114]]]]),
        _const("tiny", 1e-6),
        _const("offset", 0.01),
        _const("clip", 0.97),
        _const("to_chroma", np.array([[1, -1, 0], [0, -1, 1]], np.float32)[:, :, None, None]),
        _const("sobel", np.stack([sobel, sobel.T])[:, None]),
        _const("colour_var_eps", COLOUR_VAR_EPS),
        _const("colour_shape", [1, COLOUR_DIMS], np.int64),
    ]
    n = helper.make_node
    nodes = [
        n("Conv", [INPUT, "grey_w"], ["grey"]),
        # colour: log R/G and log B/G, smoothed, minus the frame's own mean, peak per block
        n("Add", [INPUT, "offset"], ["lifted"]),
        n("Log", ["lifted"], ["log_rgb"]),
        n("Conv", ["log_rgb", "to_chroma"], ["chroma_raw"]),
        n("ReduceMean", ["chroma_raw"], ["chroma_frame"], axes=[2, 3]),
        n("Sub", ["chroma_raw", "chroma_frame"], ["chroma_rel"]),
        # the frame's colour: its mean log R/G, log B/G and the log of their pixel variance
        n("Mul", ["chroma_rel", "chroma_rel"], ["chroma_sq"]),
        n("ReduceMean", ["chroma_sq"], ["chroma_var"], axes=[2, 3]),
        n("Add", ["chroma_var", "colour_var_eps"], ["chroma_var_safe"]),
        n("Log", ["chroma_var_safe"], ["chroma_logvar"]),
        n("Concat", ["chroma_frame", "chroma_logvar"], ["frame_colour_map"], axis=1),
        n("Reshape", ["frame_colour_map", "colour_shape"], [FRAME_COLOUR]),
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


def _grainfree_nodes(size: int) -> tuple[list[Any], list[Any]]:
    """`g` -> `grainfree_neighbourhoods` [1, GF_DIMS, Gg, Gg]: the frame without its grain
    (`trainer.grainfree.grain_free`: each pixel minus its mean along a short line in the
    direction of least residual, so a directional grain cancels and a shallow dent stays),
    blurred by GF_SIGMA, sampled as GF_SIDE x GF_SIDE neighbourhoods GF_DILATION apart every
    GF_STRIDE pixels. Their Gaussians per position learn the camera's own low-frequency
    mottling, so a dent is judged against it, not against a fixed contrast."""
    from onnx import helper

    from trainer.grainfree import grain_free
    from trainer.onnxgraph import Graph
    from trainer.texturestats import blur

    g = Graph()
    free, _, _, ones, _ = grain_free(g, "g", size)
    smooth = blur(g, free, ones, GF_SIGMA)
    samples = np.eye(GF_DIMS, dtype=np.float32).reshape(GF_DIMS, 1, GF_SIDE, GF_SIDE)
    strides = [GF_STRIDE] * 2
    taps = g.const(samples, "gf_samples")
    out = g.op("Conv", [smooth, taps], dilations=[GF_DILATION] * 2, strides=strides)
    return [*g.nodes, helper.make_node("Identity", [out], [GRAINFREE])], g.inits


def _descriptor_nodes(patch: int, stride: int) -> tuple[list[Any], list[Any]]:
    """The maps -> `patch_features` [1, DIMS, G, G] (overlapping patches, `stride` apart)."""
    from onnx import helper

    pool: dict[str, Any] = {"kernel_shape": [patch, patch], "strides": [stride, stride]}
    sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32) / 8
    diagonal = np.array([[0, 1, 2], [-1, 0, 1], [-2, -1, 0]], np.float32) / 8
    oriented = np.stack([sobel_x, sobel_x.T, diagonal, diagonal[:, ::-1]])[:, None]
    laplace = np.array([[[[0, 1, 0], [1, -4, 1], [0, 1, 0]]]], np.float32)
    consts = [
        _const("oriented_w", oriented),  # [4, 1, 3, 3]
        _const("laplace_w", laplace),
        _const("eps", [EPS]),
        _const("energy_eps", [ENERGY_EPS]),
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
        # energies of the gain-free grey level
        n("Conv", ["g", "oriented_w"], ["orient"], pads=[1, 1, 1, 1]),
        n("Conv", ["g", "laplace_w"], ["lap"], pads=[1, 1, 1, 1]),
        _pool("AveragePool", "g", "g9", 9),
        n("Sub", ["g9", "g_wide"], ["coarse"]),
        n("Concat", ["orient", "lap", "band", "fine", "coarse"], ["responses"], axis=1),
        n("Mul", ["responses", "responses"], ["energy"]),
        n("AveragePool", ["energy"], ["e_mean"], **pool),
        n("Slice", ["energy", "peak_from", "peak_to", "axis1"], ["peak_src"]),  # band .. coarse
        n("ReduceSum", ["orient_energy", "axis1"], ["grad_energy"], keepdims=1),
        n("Concat", ["peak_src", "grad_energy"], ["peaks_in"], axis=1),
        n("MaxPool", ["peaks_in"], ["e_max"], **pool),
        n("Concat", ["e_mean", "e_max"], ["energies"], axis=1),
        n("Add", ["energies", "energy_eps"], ["energies_eps"]),
        n("Log", ["energies_eps"], ["log_energies"]),
        n("Slice", ["energy", "orient_from", "orient_to", "axis1"], ["orient_energy"]),
        # colour relative to the frame's own
        n("AveragePool", ["chroma_rel"], ["p_chroma"], **pool),
        n("Concat", ["p_mean", "log_energies", "p_chroma"], [FEATURES], axis=1),
    ]
    consts += [
        _const("peak_from", [5], np.int64),
        _const("peak_to", [8], np.int64),
        _const("orient_from", [0], np.int64),
        _const("orient_to", [4], np.int64),
    ]
    return _ordered(nodes), consts


def _ordered(nodes: list[Any]) -> list[Any]:
    """`nodes` in an order where every input is produced before it is read (ONNX wants a
    topologically sorted graph; names not produced here are the graph's inputs or constants)."""
    produced = {o for node in nodes for o in node.output}
    done: set[str] = set()
    out: list[Any] = []
    waiting = list(nodes)
    while waiting:
        for node in waiting:
            if all(i in done or i not in produced for i in node.input):
                out.append(node)
                done.update(node.output)
                waiting.remove(node)
                break
        else:
            raise ValueError("the feature graph has a loop")
    return out


def _graph(config: NoveltyConfig, tail: list[Any], tail_consts: list[Any], outputs: list[Any]
           ) -> bytes:  # fmt: skip
    import onnx
    from onnx import TensorProto, helper

    maps, map_consts = _maps_nodes()
    desc, desc_consts = _descriptor_nodes(config.patch, config.stride)
    free, free_consts = _grainfree_nodes(config.size)
    graph = helper.make_graph(
        maps + desc + free + tail,
        "linefleet-novelty",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [1, 3, config.size, config.size])],
        outputs,
        initializer=map_consts + desc_consts + free_consts + tail_consts,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="linefleet-trainer"
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return bytes(model.SerializeToString())


def feature_model(config: NoveltyConfig) -> bytes:
    """The features alone: `patch_features` [1, DIMS, G, G], `colour_deviation`
    [1, 2, S/16, S/16], `grey_deviation` [1, 4, S/32, S/32] and `grainfree_neighbourhoods`
    [1, GF_DIMS, Gg, Gg]: what the fitter learns from."""
    from onnx import TensorProto, helper

    size, grid = config.size, config.grid
    outs = [
        helper.make_tensor_value_info(FEATURES, TensorProto.FLOAT, [1, DIMS, grid, grid]),
        helper.make_tensor_value_info(
            CHROMA, TensorProto.FLOAT, [1, 2, *[size // CHROMA_BLOCK] * 2]
        ),
        helper.make_tensor_value_info(GREY, TensorProto.FLOAT, [1, 4, *[size // GREY_BLOCK] * 2]),
        helper.make_tensor_value_info(
            GRAINFREE, TensorProto.FLOAT, [1, GF_DIMS, config.gf_grid, config.gf_grid]
        ),
        helper.make_tensor_value_info(FRAME_COLOUR, TensorProto.FLOAT, [1, COLOUR_DIMS]),
    ]
    return _graph(config, [], [], outs)


def smoothing(grid: int) -> int:
    """The side of the window the distance map is averaged over (SMOOTH, or the grid if less)."""
    return min(SMOOTH, grid)


def _mahalanobis(
    source: str, mu: str, precision: str, part: str, grid: int, shapes: str = ""
) -> list[Any]:
    """`source` [1, DIMS, G, G] -> `part` [1, 1]: the largest mean, over a window of
    `smoothing(grid)` x `smoothing(grid)` positions, of the Mahalanobis distance of a
    position's descriptor from its position's Gaussian."""
    from onnx import helper

    n = helper.make_node
    k = smoothing(grid)
    return [
        n("Reshape", [source, f"{shapes}flat_shape"], [f"{part}_flat"]),
        n("Transpose", [f"{part}_flat"], [f"{part}_rows"], perm=[1, 0]),  # [P, DIMS]
        n("Sub", [f"{part}_rows", mu], [f"{part}_delta"]),
        n("Unsqueeze", [f"{part}_delta", "axis1"], [f"{part}_row"]),  # [P, 1, DIMS]
        n("MatMul", [f"{part}_row", precision], [f"{part}_weighted"]),  # [P, 1, DIMS]
        n("Mul", [f"{part}_weighted", f"{part}_row"], [f"{part}_terms"]),
        n("ReduceSum", [f"{part}_terms", "axis2"], [f"{part}_d2"], keepdims=0),  # [P, 1]
        n("Relu", [f"{part}_d2"], [f"{part}_d2_pos"]),
        n("Sqrt", [f"{part}_d2_pos"], [f"{part}_distance"]),
        n("Reshape", [f"{part}_distance", f"{shapes}map_shape"], [f"{part}_map"]),  # [1,1,G,G]
        n("AveragePool", [f"{part}_map"], [f"{part}_smooth"], kernel_shape=[k, k]),
        n("ReduceMax", [f"{part}_smooth"], [f"{part}_worst"], keepdims=0),
        n("Reshape", [f"{part}_worst", "score_shape"], [part]),
    ]


def _part_nodes(stats: Statistics, grid: int, gf_grid: int) -> tuple[list[Any], list[Any]]:
    """The parts' raw values (`PARTS`), each [1, 1]."""
    from onnx import helper

    n = helper.make_node
    consts = [
        _const("flat_shape", [DIMS, grid * grid], np.int64),
        _const("map_shape", [1, 1, grid, grid], np.int64),
        _const("mu", stats.mean),
        _const("precision", stats.precision),
        _const("axis2", [2], np.int64),
        _const("score_shape", [1, 1], np.int64),
        _const(f"{CHROMA}_mu", stats.chroma_mu[None]),
        _const(f"{CHROMA}_sd", stats.chroma_sd[None]),
        _const(f"{GREY}_mu", stats.grey_mu[None]),
        _const(f"{GREY}_sd", stats.grey_sd[None]),
    ]
    consts += [
        _const("local_mu", stats.local_mean),
        _const("local_precision", stats.local_precision),
        _const("gf_flat_shape", [GF_DIMS, gf_grid * gf_grid], np.int64),
        _const("gf_map_shape", [1, 1, gf_grid, gf_grid], np.int64),
        _const("gf_mu", stats.gf_mean),
        _const("gf_precision", stats.gf_precision),
        _const("colour_mu", stats.colour_mean[None]),
        _const("colour_precision", stats.colour_precision),
    ]
    nodes = [
        n("ReduceMean", [FEATURES], ["frame_features"], axes=[2, 3], keepdims=1),
        n("Sub", [FEATURES, "frame_features"], [LOCAL]),
    ]
    for source, mu, precision, part in (
        (FEATURES, "mu", "precision", "patch_part"),
        (LOCAL, "local_mu", "local_precision", "local_part"),
    ):
        nodes += _mahalanobis(source, mu, precision, part, grid)
    nodes += _mahalanobis(GRAINFREE, "gf_mu", "gf_precision", "grainfree_part", gf_grid, "gf_")
    nodes += [  # the frame colour's Mahalanobis distance from the line's
        n("Sub", [FRAME_COLOUR, "colour_mu"], ["colour_delta"]),  # [1, COLOUR_DIMS]
        n("MatMul", ["colour_delta", "colour_precision"], ["colour_weighted"]),
        n("Mul", ["colour_weighted", "colour_delta"], ["colour_terms"]),
        n("ReduceSum", ["colour_terms", "axis1"], ["colour_d2"], keepdims=1),  # [1, 1]
        n("Relu", ["colour_d2"], ["colour_d2_pos"]),
        n("Sqrt", ["colour_d2_pos"], ["frame_colour_part"]),
    ]
    for source, part in ((CHROMA, "colour_part"), (GREY, "grey_part")):
        nodes += [
            n("Sub", [source, f"{source}_mu"], [f"{source}_c"]),
            n("Div", [f"{source}_c", f"{source}_sd"], [f"{source}_z"]),
            n("ReduceMax", [f"{source}_z"], [f"{source}_max"], axes=[1, 2, 3], keepdims=1),
            n("Reshape", [f"{source}_max", "score_shape"], [part]),
        ]
    return nodes, consts


PARTS = (
    "patch_part", "local_part", "colour_part", "grey_part", "grainfree_part", "frame_colour_part",
)  # fmt: skip


def parts_model(config: NoveltyConfig, stats: Statistics) -> bytes:
    """The parts' raw values, before they are standardised."""
    from onnx import TensorProto, helper

    nodes, consts = _part_nodes(stats, config.grid, config.gf_grid)
    outs = [helper.make_tensor_value_info(p, TensorProto.FLOAT, [1, 1]) for p in PARTS]
    return _graph(config, nodes, consts, outs)


def novelty_model(config: NoveltyConfig, stats: Statistics) -> bytes:
    """The scoring graph: `score` [1, 1] = exp(the largest standardised log part)."""
    from onnx import TensorProto, helper

    nodes, consts = _part_nodes(stats, config.grid, config.gf_grid)
    n = helper.make_node
    consts += [_const("part_eps", EPS), _const("z_cap", Z_CAP)]
    for part, loc, spread in zip(PARTS, stats.loc, stats.spread, strict=True):
        consts += [_const(f"{part}_loc", loc), _const(f"{part}_spread", spread)]
        nodes += [
            n("Relu", [part], [f"{part}_pos"]),
            n("Add", [f"{part}_pos", "part_eps"], [f"{part}_safe"]),
            n("Log", [f"{part}_safe"], [f"{part}_log"]),
            n("Sub", [f"{part}_log", f"{part}_loc"], [f"{part}_centred"]),
            n("Div", [f"{part}_centred", f"{part}_spread"], [f"{part}_z"]),
        ]
    nodes += [
        n("Max", [f"{p}_z" for p in PARTS], ["z_max"]),
        n("Min", ["z_max", "z_cap"], ["z_capped"]),
        n("Exp", ["z_capped"], [SCORE]),
    ]
    out = helper.make_tensor_value_info(SCORE, TensorProto.FLOAT, [1, 1])
    return _graph(config, nodes, consts, [out])


def _outputs(data: bytes, names: Sequence[str], inputs: npt.NDArray[np.float32]) -> list[Any]:
    session = _session(data)
    runs = [session.run(list(names), {INPUT: inputs[i : i + 1]}) for i in range(len(inputs))]
    return [np.concatenate([r[k] for r in runs]).astype(np.float64) for k in range(len(names))]


Array = npt.NDArray[np.float64]
Features = tuple[Array, Array, Array, Array, Array]
"""Patch descriptors [N, P, DIMS], colour deviation [N, 2, S/16, S/16], grey deviation
[N, 4, S/32, S/32], grain-free neighbourhoods [N, Pg, GF_DIMS] and the frame colour
[N, COLOUR_DIMS]."""


def _rows(stacked: Array) -> Array:
    """[N, D, G, G] -> [N, G*G, D], positions row by row."""
    count, dims = stacked.shape[:2]
    return np.ascontiguousarray(stacked.reshape(count, dims, -1).transpose(0, 2, 1))


def features(inputs: npt.NDArray[np.float32], config: NoveltyConfig) -> Features:
    """Every input's features (`Features`), computed by the same graph the edge runs."""
    stacked, chroma, grey, free, colour = _outputs(
        feature_model(config), (FEATURES, CHROMA, GREY, GRAINFREE, FRAME_COLOUR), inputs
    )
    return _rows(stacked), chroma, grey, _rows(free), colour


def select(feats: Features, which: Any) -> Features:
    """The features of the frames `which` (an index or mask) selects."""
    patches, chroma, grey, free, colour = feats
    return patches[which], chroma[which], grey[which], free[which], colour[which]


def gaussians(
    features: npt.NDArray[np.float64], grid: int, neighbours: int = NEIGHBOURS
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Mean [P, DIMS] and precision [P, DIMS, DIMS] per position of a grid x grid layout, each
    from the descriptors at that position and those up to `neighbours` positions away
    (Ledoit-Wolf shrinkage)."""
    count, positions, dims = features.shape
    if positions != grid * grid:
        raise ValueError(f"{positions} positions are not a {grid} x {grid} grid")
    laid = features.reshape(count, grid, grid, dims)
    mean = np.empty((positions, dims))
    precision = np.empty((positions, dims, dims))
    for row in range(grid):
        for col in range(grid):
            rows = slice(max(0, row - neighbours), row + neighbours + 1)
            cols = slice(max(0, col - neighbours), col + neighbours + 1)
            sample = laid[:, rows, cols, :].reshape(-1, dims)
            p = row * grid + col
            mean[p] = sample.mean(axis=0)
            cov = ledoit_wolf(sample)
            cov += np.eye(dims) * 1e-6 * max(1.0, float(np.trace(cov)) / dims)
            precision[p] = np.linalg.inv(cov)
    return mean, precision


def ledoit_wolf(sample: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The Ledoit-Wolf shrunk covariance [D, D] of `sample` [N, D]: scikit-learn's
    `LedoitWolf().fit(sample).covariance_`, the same operations in the same order, without its
    per-call input validation and the precision it also computes (`gaussians` calls it once per
    grid position and fold, thousands of times per fit, where those cost 30 times the sums)."""
    count, dims = sample.shape
    x = sample - sample.mean(axis=0)
    if dims == 1:
        return np.atleast_2d((x**2).mean())
    x2 = x**2
    trace = np.sum(x2, axis=0) / count
    mu = np.sum(trace) / dims
    delta_ = np.sum(np.dot(x.T, x) ** 2) / count**2
    beta_ = np.sum(np.dot(x2.T, x2))
    beta = 1.0 / (dims * count) * (beta_ / count - delta_)
    delta = (delta_ - 2.0 * mu * trace.sum() + dims * mu**2) / dims
    beta = min(beta, delta)
    shrinkage = 0 if beta == 0 else beta / delta
    empirical = np.dot(x.T, x) / count
    shrunk: npt.NDArray[np.float64] = (1.0 - shrinkage) * empirical
    shrunk.flat[:: dims + 1] += shrinkage * (np.sum(np.trace(empirical)) / dims)
    return shrunk


TAIL_SHARE = 0.10
"""The threshold's tail model is fitted to this share of the calibration scores, their
largest (`threshold_for`)."""


def threshold_for(scores: Sequence[float], false_alarm_rate: float) -> float:
    """The score that `false_alarm_rate` of ok frames reach, estimated from `scores` (the fit
    frames' out-of-fold scores, positive).

    Where fewer than TAIL_MIN_ABOVE of the n scores would lie above it (rate * n < 10; at 1% of
    200, two) and n >= TAIL_MIN_ABOVE / TAIL_SHARE, from a tail model: the log scores (the
    largest standardised part) over the lower edge u of the k = TAIL_SHARE * n (rounded down)
    largest (u the (k+1)-th largest) taken as exponential (peaks over a threshold, generalised
    Pareto with shape 0: the maximum of parts with light, Gaussian-like tails lies in its
    domain), its scale the mean excess over u (maximum likelihood), the threshold where that
    tail falls from k/n to the rate, with the scale's own uncertainty (`predictive_excess`):
    exp(u + scale * predictive_excess(k, n, rate)). It rests on the k largest scores, where an
    order statistic rests on the two or three largest. Otherwise the
    higher (1 - rate) quantile: the smallest score at or above which at most the rate fall
    (with n scores the smallest rate reachable is 1/n, and below that the largest score,
    nudged up so none of them is flagged)."""
    count = len(scores)
    tail = int(np.floor(TAIL_SHARE * count))
    if false_alarm_rate * count < TAIL_MIN_ABOVE <= tail < count:
        logs = np.sort(np.log(np.asarray(scores, dtype=np.float64)))
        edge = float(logs[count - tail - 1])
        scale = float(np.mean(logs[count - tail :] - edge))
        excess = predictive_excess(tail, count, false_alarm_rate)
        return float(np.exp(edge + scale * excess))
    ordered = sorted(float(s) for s in scores)
    allowed = int(np.floor(false_alarm_rate * len(ordered)))
    if allowed == 0:
        top = ordered[-1]
        return float(np.nextafter(np.float32(top), np.float32(np.inf)))
    return ordered[len(ordered) - allowed]


def predictive_excess(tail: int, count: int, false_alarm_rate: float) -> float:
    """How many fitted scales above the tail's edge the threshold lies: the excess x at which
    an exponential tail of k = `tail` of `count` values, its scale estimated by their mean
    excess, is exceeded by a fresh value at `false_alarm_rate` on average over the estimate.

    With the scale known, x = ln(k / (n * rate)). Estimated from k excesses, the scale is the
    true one times Gamma(k, 1) / k, and a fresh value exceeds u + x * estimate with probability
    k/n * E[exp(-x * Gamma(k, 1) / k)] = k/n * (1 + x / k)^-k, which is larger (a scale
    estimated too small costs more false alarms than one too large saves): the plug-in threshold
    flags 1.13% of fresh frames where 1% is asked at k = 20 of n = 200. Solved for the rate:
    x = k * ((k / (n * rate))^(1/k) - 1), the predictive threshold (ln 10 = 2.30 -> 2.44 there)."""
    ratio = tail / (count * false_alarm_rate)
    return float(tail * (ratio ** (1.0 / tail) - 1.0))


def local(patches: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Descriptors [N, P, DIMS] minus their frame's mean descriptor (what the graph's
    `local_features` are)."""
    centred: npt.NDArray[np.float64] = patches - patches.mean(axis=1, keepdims=True)
    return centred


def tail_size(count: int) -> int:
    """How many of `count` calibration values a part's tail is fitted to: `TAIL_SHARE` of them,
    at least `TAIL_MIN_ABOVE`, and always one fewer than all (the tail needs an edge below it)."""
    return max(0, min(count - 1, max(TAIL_MIN_ABOVE, int(np.floor(TAIL_SHARE * count)))))


def standardise(
    raw: Sequence[npt.NDArray[np.float64]],
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Each part's tail edge and tail scale, of its log over frames the statistics never saw:
    the k = `tail_size` largest logs taken as exponential above u, the (k+1)-th largest; the
    scale their mean excess over u (maximum likelihood), at least SPREAD_FLOOR. A part standardised
    as (log - u) / scale exceeds z on about k/n e^-z of normal frames, whatever the part."""
    locs, spreads = [], []
    for values in raw:
        logs = np.sort(np.log(np.maximum(values, 0.0) + EPS))
        tail = tail_size(len(logs))
        if tail == 0:  # one value: no tail to fit
            locs.append(float(logs[-1]) if len(logs) else 0.0)
            spreads.append(SPREAD_FLOOR)
            continue
        edge = float(logs[len(logs) - tail - 1])
        locs.append(edge)
        spreads.append(max(SPREAD_FLOOR, float(np.mean(logs[len(logs) - tail :] - edge))))
    return tuple(locs), tuple(spreads)


MIN_FIT_FRAMES = 10
MIN_HELDOUT_FRAMES = 5


def check(config: NoveltyConfig) -> None:
    if (
        config.size < GREY_BLOCK
        or config.size % GREY_BLOCK
        or config.patch < 2
        or config.size % config.patch
    ):
        raise PermanentError(
            f"size {config.size} is not a multiple of patch {config.patch} and of {GREY_BLOCK}"
        )
    if not 0 < config.false_alarm_rate < 1:
        raise PermanentError("the false-alarm rate is a fraction in (0, 1)")


def _moments(feats: Features, config: NoveltyConfig) -> Statistics:
    """The statistics of some ok frames' features, not yet standardised."""
    patches, chroma, grey, free, colour = feats
    mean, precision = gaussians(patches, config.grid)
    local_mean, local_precision = gaussians(local(patches), config.grid)
    gf_mean, gf_precision = gaussians(free, config.gf_grid)
    return Statistics(
        mean, precision, local_mean, local_precision, chroma.mean(0),
        chroma.std(0) + CHROMA_FLOOR, grey.mean(0), grey.std(0) + GREY_FLOOR,
        gf_mean, gf_precision, *colour_gaussian(colour), (0.0,) * len(PARTS),
        (1.0,) * len(PARTS),
    )  # fmt: skip


def colour_gaussian(
    colour: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Mean [COLOUR_DIMS] and precision of the frames' colour [N, COLOUR_DIMS]: a Ledoit-Wolf
    covariance with the squares of COLOUR_FLOOR added to its diagonal."""
    cov = ledoit_wolf(colour) + np.diag(np.square(COLOUR_FLOOR))
    return colour.mean(axis=0), np.linalg.inv(cov)


def colour_distance(
    colour: npt.NDArray[np.float64],
    mean: npt.NDArray[np.float64],
    precision: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """[N, COLOUR_DIMS] -> [N]: each frame colour's Mahalanobis distance (`frame_colour_part`)."""
    delta = colour - mean[None]
    d2 = np.einsum("ni,ij,nj->n", delta, precision, delta)
    out: npt.NDArray[np.float64] = np.sqrt(np.maximum(d2, 0.0))
    return out


def smoothed_max(distances: npt.NDArray[np.float64], grid: int) -> npt.NDArray[np.float64]:
    """[N, P] distance maps -> [N]: the largest mean over a `smoothing(grid)` square window."""
    k = smoothing(grid)
    laid = distances.reshape(len(distances), grid, grid)
    side = grid - k + 1
    total = np.zeros((len(distances), side, side))
    for i in range(k):
        for j in range(k):
            total += laid[:, i : i + side, j : j + side]
    worst: npt.NDArray[np.float64] = (total / (k * k)).reshape(len(distances), -1).max(axis=1)
    return worst


def _worst_distance(
    rows: npt.NDArray[np.float64], mean: npt.NDArray[np.float64], precision: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    delta = rows - mean[None]  # [N, P, DIMS]
    d2 = np.einsum("npi,pij,npj->np", delta, precision, delta)
    grid = round(float(np.sqrt(rows.shape[1])))
    return smoothed_max(np.sqrt(np.maximum(d2, 0.0)), grid)


def raw_parts(stats: Statistics, feats: Features) -> npt.NDArray[np.float64]:
    """[N, len(PARTS)]: the parts' raw values as the graph computes them (`parts_model`), here
    in numpy from features already extracted (the cross-fitting scores every ok frame with
    several fold statistics, and one feature pass serves them all)."""
    patches, chroma, grey, free, colour = feats
    count = len(patches)
    columns = [
        _worst_distance(patches, stats.mean, stats.precision),
        _worst_distance(local(patches), stats.local_mean, stats.local_precision),
        ((chroma - stats.chroma_mu[None]) / stats.chroma_sd[None]).reshape(count, -1).max(1),
        ((grey - stats.grey_mu[None]) / stats.grey_sd[None]).reshape(count, -1).max(1),
        _worst_distance(free, stats.gf_mean, stats.gf_precision),
        colour_distance(colour, stats.colour_mean, stats.colour_precision),
    ]
    return np.stack(columns, axis=1)


def scores_of(
    raw: npt.NDArray[np.float64], loc: Sequence[float], spread: Sequence[float]
) -> npt.NDArray[np.float64]:
    """The score the graph gives parts `raw` [N, len(PARTS)] standardised by `loc`, `spread`."""
    logs = np.log(np.maximum(raw, 0.0) + EPS)
    z = (logs - np.asarray(loc)[None]) / np.asarray(spread)[None]
    out: npt.NDArray[np.float64] = np.exp(np.minimum(z.max(axis=1), Z_CAP))
    return out


FOLDS = 10
"""Cross-fitting folds: the fit frames are split this many ways, each part scored by
statistics fitted on the other parts, so every fit frame gives an out-of-fold score for the
standardisation and the threshold."""


def fold_of(count: int, folds: int) -> npt.NDArray[np.intp]:
    """Each of `count` frames' fold (interleaved, so a fold spans the whole capture)."""
    return np.arange(count) % folds


def out_of_fold_parts(
    feats: Features, config: NoveltyConfig, folds: int = FOLDS
) -> npt.NDArray[np.float64]:
    """[N, len(PARTS)]: each frame's raw parts under statistics fitted without its fold."""
    fold = fold_of(len(feats[0]), folds)
    raw = np.empty((len(feats[0]), len(PARTS)))
    for f in range(folds):
        stats = _moments(select(feats, fold != f), config)
        raw[fold == f] = raw_parts(stats, select(feats, fold == f))
    return raw


@dataclass(frozen=True)
class Fit:
    stats: Statistics
    """The statistics of every fit frame, standardised."""
    calibration: tuple[float, ...]
    """The fit frames' scores the threshold is chosen on (numpy; `cross_standardised`): each
    frame's out-of-fold parts standardised without its fold."""


def cross_standardised(raw: npt.NDArray[np.float64], folds: int = FOLDS) -> npt.NDArray[np.float64]:
    """[N]: the scores of out-of-fold parts `raw` [N, len(PARTS)], each frame's standardised by
    the tails of the other folds' parts alone (`standardise`), the same folds as the statistics.

    Standardised by tails that include it, a frame's largest part is judged against an edge
    and a scale fitted partly to itself: the fit frames' scores come out lower in the tail than
    a fresh frame's, and a threshold chosen on them flags more fresh frames than asked (on
    4 draws of 6 lines, 200 fit frames, 1% asked: 1.5% of 1000 fresh ok frames on average;
    with the standardisation out of fold as well, 1.0%). Every frame's score is then one of a
    frame that neither the statistics nor the standardisation saw, as a fresh frame's is."""
    fold = fold_of(len(raw), folds)
    out = np.empty(len(raw))
    for f in range(folds):
        mine = fold == f
        if not mine.any():
            continue
        loc, spread = standardise([raw[~mine, k] for k in range(raw.shape[1])])
        out[mine] = scores_of(raw[mine], loc, spread)
    return out


def fit_statistics(
    train: npt.NDArray[np.float32], config: NoveltyConfig, folds: int = FOLDS
) -> Fit:
    """The statistics of the `train` inputs, each part standardised on the out-of-fold parts of
    the `train` inputs (`folds` ways): every frame scored by statistics that never saw it; and
    the calibration scores, those parts standardised without the frame's fold
    (`cross_standardised`)."""
    feats = features(train, config)
    unscaled = _moments(feats, config)
    raw = out_of_fold_parts(feats, config, folds)
    loc, spread = standardise([raw[:, k] for k in range(len(PARTS))])
    scores = cross_standardised(raw, folds)
    return Fit(replace(unscaled, loc=loc, spread=spread), tuple(float(s) for s in scores))


def fit_novelty(
    train: npt.NDArray[np.float32], heldout: npt.NDArray[np.float32], config: NoveltyConfig
) -> NoveltyModel:
    """Fit on `train` ok inputs ([N, 3, S, S] RGB in [0, 1]); standardise the parts and choose
    the threshold on the `train` inputs cross-fitted (`FOLDS` ways: each scored by statistics
    that never saw it). The `heldout` ok inputs take no part in the fit, the standardisation or
    the threshold: their scores (`heldout_scores`, from the artifact) are an independent check
    of the false-alarm rate."""
    check(config)
    if len(train) < MIN_FIT_FRAMES:
        raise PermanentError(
            f"{len(train)} ok frame(s) to fit on; a novelty model needs at least {MIN_FIT_FRAMES}"
        )
    if len(heldout) < MIN_HELDOUT_FRAMES:
        raise PermanentError(
            f"{len(heldout)} held-out ok frame(s); the false-alarm check needs at least "
            f"{MIN_HELDOUT_FRAMES}"
        )
    fit = fit_statistics(train, config)
    data = novelty_model(config, fit.stats)
    model = NoveltyModel(data, 0.0, (), len(train))
    held = tuple(float(s) for s in model.score(heldout))
    threshold = threshold_for(fit.calibration, config.false_alarm_rate)
    return NoveltyModel(data, threshold, held, len(train), fit.calibration)
