"""Tiny, real ONNX classifiers that follow the model I/O contract, built with `onnx.helper`.

They are fixtures, not trained models: the weights come from a seeded generator, so the
same (classes, seed) always gives the same bytes (and the same sha256 in the catalogue).
The graph is a small CNN whose output is a proper probability distribution:

    image [1, C, H, W] --Conv 3x3/2--> Relu --GlobalAveragePool--> Flatten
          --Gemm--> logits [1, K] --Softmax--> probabilities [1, K]

A few KB each; ~0.1 ms per frame on one CPU thread.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

OPSET = 17
IR_VERSION = 8  # readable by every onnxruntime since 1.10
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
FEATURES = 8


@dataclass(frozen=True)
class BuiltModel:
    data: bytes
    sha256: str
    size: int


def build_classifier(
    num_classes: int,
    *,
    channels: int = 3,
    height: int = 64,
    width: int = 64,
    seed: int = 0,
    name: str = "surface-classifier",
) -> BuiltModel:
    """Serialise a deterministic CNN with input `[1, channels, height, width]` and K outputs."""
    from onnx import TensorProto, helper, numpy_helper

    if num_classes < 2:
        raise ValueError("a classifier needs at least two classes")
    rng = np.random.default_rng(seed)
    conv_w = rng.normal(0.0, 0.5, (FEATURES, channels, 3, 3)).astype(np.float32)
    conv_b = rng.normal(0.0, 0.1, (FEATURES,)).astype(np.float32)
    gemm_w = rng.normal(0.0, 1.0, (FEATURES, num_classes)).astype(np.float32)
    gemm_b = rng.normal(0.0, 0.1, (num_classes,)).astype(np.float32)
    initializers = [
        numpy_helper.from_array(conv_w, "conv_w"),
        numpy_helper.from_array(conv_b, "conv_b"),
        numpy_helper.from_array(gemm_w, "gemm_w"),
        numpy_helper.from_array(gemm_b, "gemm_b"),
    ]
    nodes = [
        helper.make_node(
            "Conv",
            [INPUT_NAME, "conv_w", "conv_b"],
            ["conv"],
            kernel_shape=[3, 3],
            strides=[2, 2],
            pads=[1, 1, 1, 1],
        ),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["features"], axis=1),
        helper.make_node("Gemm", ["features", "gemm_w", "gemm_b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], [OUTPUT_NAME], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        name,
        [
            helper.make_tensor_value_info(
                INPUT_NAME, TensorProto.FLOAT, [1, channels, height, width]
            )
        ],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [1, num_classes])],
        initializer=initializers,
    )
    model = helper.make_model(
        graph,
        producer_name="linefleet.factory_sim",
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
    )
    data = model.SerializeToString()
    return BuiltModel(data, hashlib.sha256(data).hexdigest(), len(data))
