"""Tiny ONNX classifiers for edge tests, built with `onnx.helper`, following the model contract.

The graph averages each channel, so the decision depends only on frame brightness, which
makes test outcomes predictable:

    image [1, C, H, W] --ReduceMean(H, W)--> [1, C] --MatMul W--> +b --Softmax--> probabilities

With the default weights a bright frame (mean > `threshold`, 0.5) is `ok` and a dark one is
`scratch`; `invert=True` swaps that (a candidate that disagrees with the incumbent everywhere),
another `threshold` moves the boundary (a candidate that disagrees only on some frames).
`crash_above` adds a Reshape that fails at inference when the frame mean exceeds it (a model
that loads and passes its smoke test, then raises on some frames). `classes` lets a test build
a model whose output size does not match the taxonomy; `pad_bytes` makes the file bigger.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CLASSES = ("ok", "scratch", "dent")
OPSET = 13


@dataclass(frozen=True)
class BuiltModel:
    path: Path
    sha256: str
    size: int

    @property
    def url(self) -> str:
        return self.path.as_uri()


def build(
    *,
    classes: tuple[str, ...] = CLASSES,
    channels: int = 3,
    height: int = 32,
    width: int = 32,
    invert: bool = False,
    threshold: float = 0.5,
    crash_above: float | None = None,
    pad_bytes: int = 0,
) -> bytes:
    k = len(classes)
    sign = -1.0 if invert else 1.0
    # logits: ok = 10 (m - threshold), scratch = -10 (m - threshold), others fixed low
    weight = np.zeros((channels, k), dtype=np.float32)
    weight[:, 0] = sign * 10.0 / channels
    weight[:, 1] = -sign * 10.0 / channels
    bias = np.full((k,), -3.0, dtype=np.float32)
    bias[0], bias[1] = -sign * 10.0 * threshold, sign * 10.0 * threshold
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["mean"], axes=[2, 3], keepdims=0),
        helper.make_node("MatMul", ["mean", "weight"], ["scaled"]),
        helper.make_node("Add", ["scaled", "bias"], ["logits"]),
    ]
    inits = [numpy_helper.from_array(weight, "weight"), numpy_helper.from_array(bias, "bias")]
    if pad_bytes:  # an unused initializer: a bigger file (slower downloads) with the same graph
        pad = np.random.default_rng(pad_bytes).integers(0, 255, pad_bytes, dtype=np.uint8)
        inits.append(numpy_helper.from_array(pad, "padding"))
    if crash_above is None:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))
    else:
        # shape = [1, k] + (mean(image) > crash_above): a bright frame asks for [2, k + 1].
        inits += [
            numpy_helper.from_array(np.array([crash_above], dtype=np.float32), "limit"),
            numpy_helper.from_array(np.array([1, k], dtype=np.int64), "base_shape"),
        ]
        nodes += [
            helper.make_node("ReduceMean", ["image"], ["overall"], keepdims=0),
            helper.make_node("Greater", ["overall", "limit"], ["too_bright"]),
            helper.make_node("Cast", ["too_bright"], ["extra"], to=TensorProto.INT64),
            helper.make_node("Add", ["base_shape", "extra"], ["shape"]),
            helper.make_node("Reshape", ["logits", "shape"], ["reshaped"]),
            helper.make_node("Softmax", ["reshaped"], ["probabilities"], axis=1),
        ]
    graph = helper.make_graph(
        nodes,
        "tiny-classifier",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, channels, height, width])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, None])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def write_model(path: Path, **kwargs: object) -> BuiltModel:
    data = build(**kwargs)  # type: ignore[arg-type]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return BuiltModel(path, hashlib.sha256(data).hexdigest(), len(data))
