"""The blend backend's stacker as the graph computes it (its operating point, shared with the
features backend: test_operating_point.py)."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.blend import stacker_weights
from trainer.train import TrainConfig, classifier


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("seen", [(0, 1, 3), (0, 2)])
def test_the_folded_affine_map_gives_the_stackers_probabilities(seen: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    y = rng.choice(seen, 200)
    x = rng.normal(size=(200, 8)) * [1, 2, 3, 4, 5, 6, 7, 8] + y[:, None]  # unscaled inputs
    pipeline = classifier(TrainConfig(classifier="logistic")).fit(x, y)
    w, b = stacker_weights(pipeline, 4)
    got = _softmax(x @ w.astype(np.float64) + b)
    want = np.zeros((200, 4))
    want[:, pipeline.classes_] = pipeline.predict_proba(x)
    np.testing.assert_allclose(got, want, atol=1e-4)
    absent = [c for c in range(4) if c not in seen]
    assert got[:, absent].max() < 1e-6  # a class never trained on gets probability 0


def _tiny(reduce: str) -> bytes:
    """image [1, 3, 4, 4] -> softmax of a per-channel reduction: 3 'class' probabilities."""
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node(reduce, ["image"], ["r"], axes=[2, 3], keepdims=0),
        helper.make_node("Softmax", ["r"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    data: bytes = model.SerializeToString()
    return data


def test_the_composed_graph_computes_the_stack_of_both_parts_on_one_input() -> None:
    import onnxruntime as ort

    from trainer.blend import compose

    rng = np.random.default_rng(1)
    w = rng.normal(size=(6, 3)).astype(np.float32)
    b = np.array([0.5, -1e4, 0.0], np.float32)  # class 1 never trained on
    shift = np.array([-0.75, 0.0, 0.0], np.float32)  # the CNN's own ok bias, taken back out
    blend = compose(_tiny("ReduceMean"), _tiny("ReduceMax"), shift, w, b)
    session = ort.InferenceSession(blend, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    for _ in range(3):
        image = rng.random((1, 3, 4, 4), dtype=np.float32) * 4
        got = session.run(["probabilities"], {"image": image})[0]
        pf = _softmax(image.mean(axis=(2, 3)).astype(np.float64))
        pc = _softmax(image.max(axis=(2, 3)).astype(np.float64))
        z = np.hstack([np.log(pf), np.log(pc) - shift]) @ w.astype(np.float64) + b
        np.testing.assert_allclose(got, _softmax(z), atol=1e-5)
        assert got[0, 1] == 0.0
