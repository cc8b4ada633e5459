"""The regression the demo injects: a model version that is far too slow for the line.

It honours the model contract (one `[1, 3, H, W]` input, a `probabilities` output that sums to
one, so it loads and passes the device's smoke test), but a stack of wide convolutions makes
every inference cost hundreds of milliseconds: the p95 latency gate catches it on the device.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

SIZE = 256
WIDTH = 48
LAYERS = 10


def build(path: Path, classes: int, *, seed: int = 0) -> tuple[str, int]:
    """Write the ONNX file; return its sha256 and size."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = []
    nodes = []
    current, channels = "image", 3
    for n in range(LAYERS):
        w = (rng.standard_normal((WIDTH, channels, 3, 3)) * 0.05).astype(np.float32)
        weights.append(numpy_helper.from_array(w, f"w{n}"))
        nodes.append(helper.make_node("Conv", [current, f"w{n}"], [f"c{n}"], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"c{n}"], [f"r{n}"]))
        current, channels = f"r{n}", WIDTH
    head = (rng.standard_normal((WIDTH, classes)) * 0.1).astype(np.float32)
    weights.append(numpy_helper.from_array(head, "head"))
    nodes += [
        helper.make_node("GlobalAveragePool", [current], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("MatMul", ["flat", "head"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "slow-regression",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, classes])],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest(), len(data)
