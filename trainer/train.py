"""Fit a classifier on a dataset version and export ONE ONNX artifact that follows the contract.

Three backends: `features` (below), `cnn` (`trainer.cnn`: a small PyTorch network with
augmentation, ROI and tiling, exported with torch.onnx) and `blend` (`trainer.blend`: both,
stacked by a logistic regression on their out-of-fold log-probabilities, in one graph). All
export the same contract.

    model = fit(version, frames, TrainConfig(size=64))
    model.onnx            # bytes: image [1, 3, S, S] -> probabilities [1, K] (+ label)
    model.predict(x)      # probabilities from the artifact itself, [N, K]

The features come from `trainer.features.feature_graph`, run with onnxruntime, so training
sees exactly the numbers the edge will compute. A scikit-learn pipeline (standard scaler +
logistic regression, or gradient-boosted trees: `classifier`) is fitted on them, converted
with skl2onnx (no ZipMap), appended to the feature graph with `onnx.compose.merge_models`,
and followed by a fixed MatMul that places the classifier's classes in the taxonomy's order
(a class absent from training gets probability 0, and rows still sum to 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from linefleet_core.errors import PermanentError
from trainer.cnn import CnnConfig, fit_cnn
from trainer.datasets import DatasetVersion, Item
from trainer.features import INPUT, OPSET, extract, feature_graph, to_tensor
from trainer.frames import FrameStore
from trainer.operating import MIN_LINE_DEFECTS, shared_point

PROBABILITIES = "probabilities"
ML_OPSET = 3
BACKENDS = ("features", "cnn", "blend")
DEFAULT_BACKEND = "blend"
"""What `linefleet train` uses without `--backend`: the better backend on
`bench/bench_backends.py` (docs/benchmarks.md, "Training backends"). `TrainConfig` itself
defaults to `features` (the light one) for callers that build it in code."""
DEFAULT_CLASSIFIER = "boosted"
DEFAULT_TEXTURE = True
"""`linefleet train`'s features backend: boosted trees on the features + texture statistics,
the better configuration on the same benchmark. `TrainConfig`'s own defaults stay the light
logistic regression on the plain features (a library caller chooses)."""


BOOSTED_ROUNDS = 300
AUTO_SIZES = (64, 96, 128)
"""`--size auto` picks the largest of these that the training frames fill (their median side)."""


def frame_shapes(
    frames: FrameStore, items: Sequence[Item], sample: int = 64
) -> list[tuple[int, int]]:
    """(height, width) of up to `sample` of `items`, spread over them."""
    step = max(1, len(items) // sample)
    return [frames.load(i.frame).shape[:2] for i in items[::step][:sample]]


def auto_size(
    frames: FrameStore,
    items: Sequence[Item],
    sample: int = 64,
    shapes: Sequence[tuple[int, int]] | None = None,
) -> int:
    """The input size for frames like `items`: the largest of `AUTO_SIZES` not above the
    median shorter side of (up to `sample` of) them, so a frame is never shrunk further than
    it must (a small defect on a 128 px frame keeps twice the pixels it has at 64 px) and
    never enlarged beyond 64 px. Larger frames are capped at 128: use the CNN ROI and tiles."""
    found = frame_shapes(frames, items, sample) if shapes is None else shapes
    sides = sorted(min(shape) for shape in found)
    median = sides[len(sides) // 2] if sides else AUTO_SIZES[0]
    return max([s for s in AUTO_SIZES if s <= median], default=AUTO_SIZES[0])


def input_note(width: int, height: int, size: int) -> str:
    """What the square input does to frames of median `width` x `height` ("" when little):
    shrunk more than 4x (a defect of a few pixels may vanish) or stretched from an aspect of
    1.5 or more (a line-scan strip), said so at training instead of silently."""
    if not width or not height:
        return ""
    shrink = min(width, height) / size
    aspect = max(width, height) / min(width, height)
    said = []
    if shrink > 4:
        said.append(f"shrunk {shrink:.1f}x (a defect under ~{shrink:.0f} px is below a pixel)")
    if aspect >= 1.5:
        said.append(f"aspect {aspect:.1f}:1 stretched to 1:1")
    if not said:
        return ""
    return (
        f"input {size} x {size} px from frames of median {width} x {height} px: "
        f"{', '.join(said)}; for small defects: --backend cnn with --roi and --tiles"
    )


@dataclass(frozen=True)
class TrainConfig:
    size: int = 64
    """Model input side in pixels; 0: `auto_size` of the training frames."""
    c: float = 1.0
    max_iter: int = 3000
    seed: int = 0
    lines: tuple[str, ...] = ()
    """Train on these lines only (empty: every line). Evaluation always covers every line."""
    backend: str = "features"
    """`features` (hand-made ONNX features + a classifier), `cnn` (PyTorch) or `blend` (both,
    stacked)."""
    classifier: str = "logistic"
    """features: `logistic` (scaler + logistic regression) or `boosted` (gradient-boosted
    trees, depth 3, sqrt(F) features per split, 8 frames per leaf; skl2onnx exports them as
    an ai.onnx.ml TreeEnsembleClassifier)."""
    texture: bool = False
    """features: add the along-the-grain and blob statistics (`trainer.texturestats`)."""
    max_escape: float | None = None
    """features: operating point, the escape rate allowed out of fold on the training frames,
    overall and per line (`feature_operating_point`); None: plain argmax. (cnn:
    `cnn.max_escape`.)"""
    folds: int = 5
    """features: cross-fitting folds that choose the operating point (stratified by line and
    class); the classifier is then refitted on every training frame."""
    cnn: CnnConfig = field(default_factory=CnnConfig)

    def params(self) -> dict[str, Any]:
        common = {
            "backend": self.backend,
            "input_size": self.size,
            "seed": self.seed,
            "train_lines": ",".join(self.lines) or "all",
        }
        if self.backend == "cnn":
            return {**common, "classifier": "cnn", **self.cnn.params()}
        escape = "argmax" if self.max_escape is None else self.max_escape
        if self.backend == "blend":
            from trainer.blend import CNN_FOLDS

            features = TrainConfig(**{**self.__dict__, "backend": "features"}).params()
            return {**features, **self.cnn.params(), "backend": "blend",
                    "blend_stacker": "StandardScaler+LogisticRegression",
                    "blend_cnn_folds": CNN_FOLDS}  # fmt: skip
        if self.classifier == "boosted":
            return {**common, "classifier": "GradientBoosting", "texture": self.texture,
                    "max_iter": BOOSTED_ROUNDS, "max_features": "sqrt", "min_samples_leaf": 8,
                    "max_escape": escape, "folds": self.folds}  # fmt: skip
        return {
            **common,
            "classifier": "StandardScaler+LogisticRegression",
            "texture": self.texture,
            "max_escape": escape,
            "folds": self.folds,
            "C": self.c,
            "max_iter": self.max_iter,
        }


@dataclass
class TrainedModel:
    classes: tuple[str, ...]
    onnx: bytes
    pipeline: Any
    feature_model: Any
    size: int
    train_frames: int
    fitted: dict[str, Any] = field(default_factory=dict)
    """What the fit itself decided (cnn: epochs run, best epoch, operating point), for MLflow."""
    ok_scale: float = 1.0
    """features: the operating point's factor on P(ok), baked into `onnx`."""
    _session: Any = field(default=None, repr=False)

    def predict(self, images: Any) -> Any:
        """Probabilities [N, K] from the exported artifact, one frame at a time (as the edge)."""
        if self._session is None:
            self._session = session_for(self.onnx)
        return predict_with(self._session, images)


def session_for(model: bytes) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def predict_with(session: Any, images: Any) -> Any:
    name = session.get_inputs()[0].name
    rows = [session.run([PROBABILITIES], {name: images[i : i + 1]})[0] for i in range(len(images))]
    return np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)


def load_images(frames: FrameStore, items: Sequence[Item], size: int) -> Any:
    """The contract tensors of `items`, stacked: float32 [N, 3, size, size]."""
    if not items:
        return np.zeros((0, 3, size, size), np.float32)
    return np.concatenate([to_tensor(frames.load(i.frame), size) for i in items])


def classifier(config: TrainConfig) -> Any:
    """The scikit-learn pipeline of the features backend (unfitted)."""
    from sklearn.pipeline import make_pipeline

    if config.classifier == "boosted":
        from sklearn.ensemble import GradientBoostingClassifier

        # skl2onnx 1.20 cannot convert scikit-learn 1.9's HistGradientBoosting (numpy uint32
        # node ids); the exact-split trees convert. Each split looks at sqrt(F) features and
        # each leaf holds 8 frames or more: with ~200 features and ~1,000 frames the trees
        # overfit less, their probabilities are less extreme (so the operating point has
        # less to undo), and a fit is ~5x faster, which pays for the cross-fitting
        trees = GradientBoostingClassifier(
            n_estimators=BOOSTED_ROUNDS, learning_rate=0.05, max_depth=3, subsample=0.8,
            max_features="sqrt", min_samples_leaf=8, random_state=config.seed,
        )  # fmt: skip
        return make_pipeline(trees)
    if config.classifier != "logistic":
        raise PermanentError(f"unknown classifier {config.classifier!r} (logistic or boosted)")
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=config.c, max_iter=config.max_iter))


def fit(version: DatasetVersion, frames: FrameStore, config: TrainConfig) -> TrainedModel:
    items = [i for i in version.train() if not config.lines or i.line_key in config.lines]
    present = sorted({i.cls for i in items}, key=version.classes.index)
    if len(present) < 2:
        left_out = "; ".join(f"{n} label(s) {why}" for why, n in version.excluded.items())
        hint = f" (left out: {left_out}; see `linefleet labels migrate`)" if left_out else ""
        raise PermanentError(
            f"dataset {version.short} ({version.taxonomy}) has {len(items)} training frame(s) "
            f"with {len(present)} class(es); training needs at least two classes{hint}"
        )
    shapes = frame_shapes(frames, items)
    size = config.size or auto_size(frames, items, shapes=shapes)
    heights, widths = sorted(h for h, _ in shapes), sorted(w for _, w in shapes)
    chosen = {
        "input_size": size,
        "frame_width_median": widths[len(widths) // 2] if widths else 0,
        "frame_height_median": heights[len(heights) // 2] if heights else 0,
    }
    if config.backend == "cnn":
        images = load_images(frames, items, size)
        labels = np.array([version.classes.index(i.cls) for i in items])
        cnn = CnnConfig(**{**config.cnn.__dict__, "size": size, "seed": config.seed})
        groups = [i.line_key for i in items]
        fitted = fit_cnn(images, labels, version.classes, present, cnn, groups)
        return TrainedModel(
            tuple(version.classes), fitted.onnx, None, None, size, len(items),
            {**chosen, **fitted.params()},
        )  # fmt: skip
    if config.backend not in ("features", "blend"):
        raise PermanentError(f"unknown backend {config.backend!r} (one of {', '.join(BACKENDS)})")
    features = feature_graph(size, texture=config.texture)
    images = load_images(frames, items, size)
    x = extract(features, images)
    if config.backend == "blend":
        labels = np.array([version.classes.index(i.cls) for i in items])
        blend, pipeline = _fit_blend(images, labels, version.classes,
                                    [i.line_key for i in items], features, x, config)  # fmt: skip
        return TrainedModel(
            tuple(version.classes), blend.onnx, pipeline, features, size, len(items),
            {**chosen, **blend.fitted},
        )  # fmt: skip
    y = np.array([present.index(i.cls) for i in items])
    point = feature_operating_point(x, y, present, [i.line_key for i in items], config)
    pipeline = classifier(config)
    pipeline.fit(x, y)
    artifact = export(
        features, pipeline, present, version.classes, size, config.texture, point.ok_scale
    )
    return TrainedModel(
        tuple(version.classes), artifact, pipeline, features, size, len(items),
        {**chosen, **point.params()}, ok_scale=point.ok_scale,
    )  # fmt: skip


def _fit_blend(
    images: Any,
    y: Any,
    classes: Sequence[str],
    groups: Sequence[str],
    features: Any,
    x: Any,
    config: TrainConfig,
    progress: Callable[[str], None] | None = None,
) -> tuple[Any, Any]:
    """Fit both backends and the stacker on training `images` (float32 [N, 3, S, S]) with
    taxonomy indices `y`, lines `groups`, the feature graph `features` and its rows `x`;
    `config` is the `TrainConfig` (its classifier/texture for the features part, `cnn` for
    the network, `max_escape`, `folds`, `seed`). Returns the model and the features pipeline."""
    from trainer.blend import (
        CNN_FOLDS,
        FittedBlend,
        cnn_log_probabilities,
        compose,
        log_probabilities,
        stacker_weights,
    )

    say = progress or (lambda _msg: None)
    k = len(classes)
    y = np.asarray(y)
    present = sorted(set(y.tolist()))
    ok = list(classes).index("ok") if "ok" in classes else -1
    feat_config = _features_config(config)
    folds = max(2, config.folds)
    fold = cross_folds(y, groups, folds, config.seed)
    oof_f = log_probabilities(out_of_fold(x, y, k, fold, feat_config))
    pipeline = classifier(feat_config).fit(x, y)
    say("features fitted")
    cnn = CnnConfig(**{**config.cnn.__dict__, "size": images.shape[-1], "seed": config.seed})
    present_names = [classes[i] for i in present]
    cnn_fold = cross_folds(y, groups, CNN_FOLDS, config.seed)
    oof_c = np.zeros((len(y), k))
    for f in range(CNN_FOLDS):
        held = cnn_fold == f
        if not held.any() or held.all() or len(set(y[~held].tolist())) < 2:
            continue
        part = fit_cnn(images[~held], y[~held], classes,
                       [classes[i] for i in sorted(set(y[~held].tolist()))], cnn,
                       [g for g, h in zip(groups, held, strict=True) if not h])  # fmt: skip
        oof_c[held] = cnn_log_probabilities(part, images[held], ok)
        say(f"cnn fold {f + 1}/{CNN_FOLDS}")
    full = fit_cnn(images, y, classes, present_names, cnn, list(groups))
    say("cnn fitted")
    stacked = np.hstack([oof_f, oof_c])
    stacker = _stacker_config(config)
    oof_s = log_probabilities(out_of_fold(stacked, y, k, fold, stacker))
    point = shared_point(oof_s, y, ok, groups, config.max_escape, MIN_LINE_DEFECTS)
    bias = point.bias
    stack = classifier(stacker).fit(stacked, y)
    w, b = stacker_weights(stack, k)
    if ok >= 0:
        b[ok] += bias
    size = images.shape[-1]
    feat_onnx = export(features, pipeline, [classes[i] for i in present], classes, size,
                       feat_config.texture, 1.0)  # fmt: skip
    cnn_shift = np.zeros(k, np.float32)
    if ok >= 0:
        cnn_shift[ok] = full.ok_bias
    artifact = compose(feat_onnx, full.onnx, cnn_shift, w, b)
    fitted = {
        "blend_ok_bias": round(bias, 3),
        "blend_validation_frames": len(y),
        "blend_validation_escape_worst_line": round(
            max(point.line_escape.values(), default=0.0), 4
        ),
        "blend_validation_escape_worst_line_estimate": round(
            max(point.line_estimate.values(), default=0.0), 4
        ),
        "blend_cnn_folds": CNN_FOLDS,
        **full.params(),
    }
    return FittedBlend(artifact, bias, fitted), pipeline


def _features_config(config: TrainConfig) -> TrainConfig:
    from dataclasses import replace

    return replace(config, backend="features")


def _stacker_config(config: TrainConfig) -> TrainConfig:
    """The stacker: scaler + logistic regression (C=1), as the features backend builds it."""
    from dataclasses import replace

    return replace(config, backend="features", classifier="logistic", c=1.0)


@dataclass(frozen=True)
class OperatingPoint:
    """The features backend's bias toward "defect": `ok_scale` multiplies P(ok) before the
    decision (1.0: plain argmax); `ok_bias` is its natural log, as the CNN's `cnn_ok_bias`."""

    ok_scale: float = 1.0
    validation_frames: int = 0
    """Training frames scored out of fold (every one of them, when chosen)."""
    validation_escape: float | None = None
    """The out-of-fold escape rate of every training frame at this point (None: not chosen)."""
    line_escape: dict[str, float] = field(default_factory=dict)
    """Per line with at least `MIN_LINE_DEFECTS` defect frames: its out-of-fold escape rate."""
    folds: int = 0
    line_estimate: dict[str, float] = field(default_factory=dict)
    """The same lines' rates as the point holds them within `max_escape` (`trainer.operating`;
    the features backend does not shrink them, so they equal `line_escape`)."""

    @property
    def ok_bias(self) -> float:
        return float(np.log(self.ok_scale))

    def params(self) -> dict[str, Any]:
        if self.validation_escape is None:
            return {}
        worst = max(self.line_escape.values(), default=self.validation_escape)
        return {
            "ok_bias": round(self.ok_bias, 3),
            "ok_scale": round(self.ok_scale, 6),
            "validation_frames": self.validation_frames,
            "validation_folds": self.folds,
            "validation_escape": round(self.validation_escape, 4),
            "validation_escape_worst_line": round(worst, 4),
            "validation_escape_worst_line_estimate": round(
                max(self.line_estimate.values(), default=self.validation_escape), 4
            ),
        }


MIN_DEFECTS = 20
"""Defect frames below which no operating point is chosen (plain argmax)."""


def cross_folds(labels: Any, groups: Sequence[str], folds: int, seed: int) -> Any:
    """A fold number per frame: each (group, class) cell shuffled and dealt round-robin, so
    every fold holds about 1/`folds` of every line's every class."""
    rng = np.random.default_rng(seed)
    out = np.zeros(len(labels), np.int64)
    cells: dict[tuple[str, int], list[int]] = {}
    for i, cell in enumerate(zip(groups, labels, strict=True)):
        cells.setdefault((cell[0], int(cell[1])), []).append(i)
    start = 0
    for key in sorted(cells):
        members = rng.permutation(cells[key])
        out[members] = (np.arange(len(members)) + start) % folds
        start += len(members)  # cells of odd sizes do not all load fold 0
    return out


def out_of_fold(x: Any, y: Any, n_classes: int, fold: Any, config: TrainConfig) -> Any:
    """Probabilities [N, n_classes] of every frame from a classifier fitted without its fold."""
    proba = np.zeros((len(y), n_classes))
    for k in range(int(fold.max()) + 1):
        held = fold == k
        if not held.any() or held.all():
            continue
        probe = classifier(config)
        probe.fit(x[~held], y[~held])
        part = np.zeros((int(held.sum()), n_classes))
        part[:, probe.classes_] = probe.predict_proba(x[held])
        proba[held] = part
    return proba


def feature_operating_point(
    x: Any, y: Any, present: Sequence[str], groups: Sequence[str], config: TrainConfig
) -> OperatingPoint:
    """Cross-fitted: every training frame is scored by a classifier fitted on the other
    `config.folds` - 1 folds (stratified by line and class), and the bias on log P(ok) is
    `trainer.operating.shared_point`'s on those out-of-fold scores, without shrinkage: the
    one nearest 0 whose escape rate is at most `config.max_escape` over every frame and on
    every line with at least `MIN_LINE_DEFECTS` defect frames, so no line's escapes hide
    behind the others' (the blend shrinks each line's rate toward the pooled one).
    Every frame chooses, none is spent on a split. None without `max_escape`, an `ok` class,
    or `MIN_DEFECTS` defect frames."""
    if config.max_escape is None or "ok" not in present:
        return OperatingPoint()
    ok = list(present).index("ok")
    y = np.asarray(y)
    folds = max(2, config.folds)
    if int((y != ok).sum()) < MIN_DEFECTS or int((y == ok).sum()) < folds:
        return OperatingPoint()
    fold = cross_folds(y, groups, folds, config.seed)
    proba = out_of_fold(x, y, len(present), fold, config)
    log_p = np.log(np.clip(proba, 1e-12, None))
    # No shrinkage here (prior 0: each line's own out-of-fold rate binds). Measured on 14
    # draws of the independent source, shrinking let the features backend's test escapes past
    # the target on 8 draws instead of 6; its out-of-fold rates track its test rates closely,
    # so a line's rate over the target is real (docs/trainer.md, "Operating point").
    point = shared_point(log_p, y, ok, groups, config.max_escape, MIN_LINE_DEFECTS, prior=0.0)
    return OperatingPoint(float(np.exp(point.bias)), len(y), point.escape, point.line_escape,
                          folds, point.line_estimate)  # fmt: skip


def decide_scaled(probabilities: Any, classes: Sequence[str], ok_scale: float) -> Any:
    """The class indices the operating point decides: argmax with P(ok) times `ok_scale`
    (what the exported graph's renormalised probabilities give under a plain argmax)."""
    scaled = np.array(probabilities, dtype=np.float64)
    if "ok" in classes:
        scaled[:, list(classes).index("ok")] *= ok_scale
    return scaled.argmax(axis=1)


def export(
    features: Any,
    pipeline: Any,
    present: Sequence[str],
    classes: Sequence[str],
    size: int,
    texture: bool = False,
    ok_scale: float = 1.0,
) -> bytes:
    """Feature graph + classifier + class placement, as one model with a batch of one.

    `ok_scale` != 1 (the operating point) multiplies P(ok) in the placement and renormalises
    the row, so the edge's plain argmax decides at that point and rows still sum to 1; the
    classifier's own `label` output (plain argmax) is then dropped."""
    from onnx import TensorProto, compose, helper, numpy_helper
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    n_features = features.graph.output[0].type.tensor_type.shape.dim[1].dim_value
    clf = to_onnx(
        pipeline,
        initial_types=[("clf_input", FloatTensorType([None, n_features]))],
        target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET},
        options={id(pipeline.steps[-1][1]): {"zipmap": False}},
    )
    clf.ir_version = features.ir_version
    head = feature_graph(size, batch=1, texture=texture)
    merged = compose.merge_models(
        compose.add_prefix(head, "feat_"),
        compose.add_prefix(clf, "clf_"),
        io_map=[("feat_features", "clf_clf_input")],
    )
    graph = merged.graph
    placement = np.zeros((len(present), len(classes)), np.float32)
    for row, cls in enumerate(present):
        placement[row, list(classes).index(cls)] = ok_scale if cls == "ok" else 1.0
    graph.initializer.append(numpy_helper.from_array(placement, "class_placement"))
    placed = PROBABILITIES if ok_scale == 1.0 else "placed_scores"
    graph.node.append(
        helper.make_node("MatMul", ["clf_probabilities", "class_placement"], [placed])
    )
    if ok_scale != 1.0:
        graph.initializer.append(numpy_helper.from_array(np.array([1], np.int64), "sum_axes"))
        graph.node.extend([
            helper.make_node("ReduceSum", [placed, "sum_axes"], ["placed_sum"], keepdims=1),
            helper.make_node("Div", [placed, "placed_sum"], [PROBABILITIES]),
        ])  # fmt: skip
    graph.input[0].name = INPUT
    for node in graph.node:
        node.input[:] = [INPUT if n == "feat_" + INPUT else n for n in node.input]
    outputs = [o for o in graph.output if o.name == "clf_label" and ok_scale == 1.0]
    del graph.output[:]
    probabilities = helper.make_tensor_value_info(
        PROBABILITIES, TensorProto.FLOAT, [1, len(classes)]
    )
    graph.output.extend([probabilities, *outputs])
    merged.producer_name = "linefleet-trainer"
    import onnx

    onnx.checker.check_model(merged, full_check=True)
    data: bytes = merged.SerializeToString()
    return data
