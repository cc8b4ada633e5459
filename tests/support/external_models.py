"""Models as factories bring them, built at test time (never downloaded).

- `torch_classifier`: a small PyTorch CNN trained for a few steps to tell bright frames (`ok`)
  from dark ones (the second class), exported with `torch.onnx` (input `image`, output `logits`,
  ImageNet mean/std normalisation, dynamic batch). torch is the trainer extra's `torch==2.13.0`;
  `require_torch` skips without it, except under CI=true where it fails.
- `yolo_detector`: a YOLOv8-style graph built with `onnx.helper`: input `images` [1, 3, 64, 64],
  output `output0` [1, 4+K, 64] (cx, cy, w, h, class scores) over an 8x8 grid of 8-px cells;
  class 0's score is the cell's darkness, the others 0.
- `anomaly_model`: an NHWC graph: input `input` [1, 64, 64, 3], outputs `anomaly_score` [1, 1]
  (the darkest 8x8 cell's darkness) and `anomaly_map` [1, 8, 8].
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
GRID = 8
SIZE = 64


@dataclass(frozen=True)
class Built:
    path: Path
    sha256: str
    size: int
    opset: int


def _built(path: Path, opset: int) -> Built:
    raw = path.read_bytes()
    return Built(path, hashlib.sha256(raw).hexdigest(), len(raw), opset)


def require_torch() -> Any:
    """`torch`, or a skip; under CI=true a missing torch is a failure, never a silent pass."""
    try:
        import torch
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("torch==2.13.0 is not installed (pip install 'linefleet[trainer]')")
        pytest.skip("torch is not installed (the trainer extra's torch==2.13.0)")
    return torch


def torch_classifier(path: Path, classes: int, size: int = 32, opset: int = 17) -> Built:
    torch = require_torch()
    torch.manual_seed(0)
    torch.set_num_threads(1)  # a tiny net: threads only contend on a shared 2-core machine
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(16, classes),
    )
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    rng = np.random.default_rng(0)
    optimiser = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(40):  # bright frames are class 0 (ok), dark ones class 1
        levels = rng.uniform(0.0, 1.0, size=16).astype(np.float32)
        pixels = levels[:, None, None, None] + rng.normal(0, 0.05, (16, 3, size, size))
        x = (torch.tensor(pixels, dtype=torch.float32).clamp(0, 1) - mean) / std
        y = torch.tensor((levels < 0.5).astype(np.int64))
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        optimiser.step()
    net.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.zeros(1, 3, size, size),),
            str(path),
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    return _built(path, opset)


def _const(name: str, value: Any, dtype: Any = np.float32) -> Any:
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def _cell_boxes() -> np.ndarray:
    cell = SIZE // GRID
    centres = (np.arange(GRID) * cell + cell / 2).astype(np.float32)
    cy, cx = np.meshgrid(centres, centres, indexing="ij")
    n = GRID * GRID
    return np.stack([cx.reshape(n), cy.reshape(n), np.full(n, cell), np.full(n, cell)])[None]


def yolo_detector(path: Path, classes: int, opset: int = 18) -> Built:
    n = GRID * GRID
    nodes = [
        helper.make_node(
            "AveragePool", ["images"], ["pooled"], kernel_shape=[8, 8], strides=[8, 8]
        ),
        helper.make_node("ReduceMean", ["pooled", "axis1"], ["grey"], keepdims=1),
        helper.make_node("Sub", ["one", "grey"], ["dark"]),
        helper.make_node("Reshape", ["dark", "flat"], ["score0"]),
        helper.make_node("Mul", ["score0", "zeros"], ["others"]),
        helper.make_node("Concat", ["boxes", "score0", "others"], ["output0"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "yolo-style",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + classes, n])],
        initializer=[
            _const("axis1", [1], np.int64),
            _const("one", 1.0),
            _const("flat", [1, 1, n], np.int64),
            _const("zeros", np.zeros((1, classes - 1, 1))),
            _const("boxes", _cell_boxes()),
        ],
    )
    return _save(graph, path, opset)


def anomaly_model(path: Path, opset: int = 18) -> Built:
    nodes = [
        helper.make_node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("AveragePool", ["nchw"], ["pooled"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("ReduceMean", ["pooled", "axis1"], ["grey"], keepdims=0),
        helper.make_node("Sub", ["one", "grey"], ["anomaly_map"]),
        helper.make_node("ReduceMax", ["anomaly_map", "axes12"], ["anomaly_score"], keepdims=0),
        helper.make_node("Reshape", ["anomaly_score", "col"], ["score_column"]),
    ]
    graph = helper.make_graph(
        nodes,
        "anomaly",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, SIZE, SIZE, 3])],
        [
            helper.make_tensor_value_info("score_column", TensorProto.FLOAT, [1, 1]),
            helper.make_tensor_value_info("anomaly_map", TensorProto.FLOAT, [1, GRID, GRID]),
        ],
        initializer=[
            _const("axis1", [1], np.int64),
            _const("axes12", [1, 2], np.int64),
            _const("one", 1.0),
            _const("col", [-1, 1], np.int64),
        ],
    )
    return _save(graph, path, opset)


def _save(graph: Any, path: Path, opset: int) -> Built:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return _built(path, opset)
