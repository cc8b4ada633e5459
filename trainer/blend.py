"""The `blend` backend: the features backend and the CNN, stacked, exported as ONE ONNX graph.

    model = fit(version, frames, TrainConfig(backend="blend"))   # trainer.train
    model.onnx    # image [1, 3, S, S] -> probabilities [1, K]: the same contract as the others

The two backends fail on different lines of the independent source (`bench/othersource.py`):
the features backend lets faint hairline scratches and shallow dents through, the CNN calls
brushed metal's grain a scratch. A small logistic regression (scaler folded in) on both
backends' log-probabilities learns how far to trust each. It is fitted on out-of-fold
log-probabilities (`CNN_FOLDS` CNN fits and `TrainConfig.folds` feature-classifier fits on
the cross-fitting folds, `trainer.train.cross_folds`; the fit is `trainer.train._fit_blend`),
so it never learns how a backend scores frames it trained on. The operating point is
`trainer.operating.shared_point` (max escape out of fold, pooled and on each line's rate shrunk
toward the pooled one) on the stacker's own out-of-fold log-probabilities, baked into the graph
as a bias on the `ok` logit. The exported graph (`compose`) runs the feature graph + classifier and
the CNN on the same `image` input, then Log, the stacker's MatMul, the bias and a Softmax;
classes absent from training get probability 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trainer.cnn import INPUT, OUTPUT

FLOOR = 1e-12
"""Probabilities are clipped to this before the log (a backend's 0 stays finite)."""
CNN_FOLDS = 3
"""CNN fits on the cross-fitting folds for its out-of-fold log-probabilities (~60 CPU s each
on ~1,000 frames at 128 px); with the final CNN and the features, ~340 CPU s in all."""


@dataclass
class FittedBlend:
    onnx: bytes
    ok_bias: float
    fitted: dict[str, Any] = field(default_factory=dict)


def log_probabilities(p: Any) -> Any:
    return np.log(np.clip(np.asarray(p, np.float64), FLOOR, None))


def cnn_log_probabilities(fitted: Any, images: Any, ok: int) -> Any:
    """The CNN's log-probabilities of `images` from its exported graph, its own operating
    point (`ok_bias`) taken back out (a shift of each row, which the stacker must not see)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(fitted.onnx, options, providers=["CPUExecutionProvider"])
    rows = [session.run([OUTPUT], {INPUT: images[i : i + 1]})[0] for i in range(len(images))]
    out = log_probabilities(np.concatenate(rows) if rows else np.zeros((0, 0)))
    if ok >= 0:
        out[:, ok] -= fitted.ok_bias
    return out


def stacker_weights(pipeline: Any, k: int) -> tuple[Any, Any]:
    """The fitted scaler + logistic regression as one affine map W [2K, K], b [K] onto the
    taxonomy's K classes (a class the stacker never saw: bias -1e4, so probability 0)."""
    scaler, logistic = pipeline.steps[0][1], pipeline.steps[-1][1]
    coef = np.asarray(logistic.coef_, np.float64)
    intercept = np.asarray(logistic.intercept_, np.float64)
    seen = [int(c) for c in logistic.classes_]
    if coef.shape[0] == 1:  # two classes: one score, for the second
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.array([0.0, intercept[0]])
    coef = coef / scaler.scale_
    intercept = intercept - coef @ scaler.mean_
    w = np.zeros((coef.shape[1], k))
    b = np.full(k, -1e4)
    for row, cls in enumerate(seen):
        w[:, cls] = coef[row]
        b[cls] = intercept[row]
    return w.astype(np.float32), b.astype(np.float32)


def compose(features_onnx: bytes, cnn_onnx: bytes, cnn_shift: Any, w: Any, b: Any) -> bytes:
    """One graph: both models on the shared `image` input, then
    softmax(concat(log pf, log pc - cnn_shift) @ w + b) as `probabilities` [1, K]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnx import compose as oc

    a = oc.add_prefix(onnx.load_from_string(features_onnx), "bf_")
    c = oc.add_prefix(onnx.load_from_string(cnn_onnx), "bc_")
    nodes = []
    for node in [*a.graph.node, *c.graph.node]:
        node.input[:] = [INPUT if n in ("bf_" + INPUT, "bc_" + INPUT) else n for n in node.input]
        nodes.append(node)
    inits = [*a.graph.initializer, *c.graph.initializer]
    for name, value in (("blend_floor", np.float32(FLOOR)), ("blend_cnn_shift", cnn_shift),
                        ("blend_w", w), ("blend_b", b)):  # fmt: skip
        inits.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
    nodes += [
        helper.make_node("Max", ["bf_" + OUTPUT, "blend_floor"], ["blend_pf"]),
        helper.make_node("Log", ["blend_pf"], ["blend_lf"]),
        helper.make_node("Max", ["bc_" + OUTPUT, "blend_floor"], ["blend_pc"]),
        helper.make_node("Log", ["blend_pc"], ["blend_lc_raw"]),
        helper.make_node("Sub", ["blend_lc_raw", "blend_cnn_shift"], ["blend_lc"]),
        helper.make_node("Concat", ["blend_lf", "blend_lc"], ["blend_in"], axis=1),
        helper.make_node("MatMul", ["blend_in", "blend_w"], ["blend_mm"]),
        helper.make_node("Add", ["blend_mm", "blend_b"], ["blend_logits"]),
        helper.make_node("Softmax", ["blend_logits"], [OUTPUT], axis=1),
    ]
    k = int(np.asarray(b).shape[0])
    image = helper.make_tensor_value_info(
        INPUT, TensorProto.FLOAT, [d.dim_value for d in a.graph.input[0].type.tensor_type.shape.dim]
    )
    out = helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [1, k])
    graph = helper.make_graph(nodes, "linefleet-blend", [image], [out], inits)
    opsets: dict[str, int] = {}
    for m in (a, c):
        for o in m.opset_import:
            opsets[o.domain] = max(opsets.get(o.domain, 0), o.version)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets.items())]
    )
    model.ir_version = max(a.ir_version, c.ir_version)
    model.producer_name = "linefleet-trainer-blend"
    onnx.checker.check_model(model, full_check=True)
    data: bytes = model.SerializeToString()
    return data
