"""A tiny ONNX graph builder (opset 17): every op returns the name of its (first) output.

    g = Graph()
    y = g.op("Abs", [g.op("Sub", ["image", g.const(np.float32(0.5))])])
    med = g.kth_largest(g.flat(y), k)       # order statistics with TopK

Used by the feature graph (`trainer.features`, `trainer.defectshape`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class Graph:
    """A tiny builder: every op returns the name of its (first) output."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._n = 0

    def _name(self, hint: str) -> str:
        self._n += 1
        return f"f{self._n}_{hint}"

    def const(self, value: Any, hint: str = "c") -> str:
        from onnx import numpy_helper

        name = self._name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, kind: str, inputs: Sequence[str], **attrs: Any) -> str:
        from onnx import helper

        out = self._name(kind.lower())
        self.nodes.append(helper.make_node(kind, list(inputs), [out], **attrs))
        return out

    def topk(self, x: str, k: int) -> str:
        """The k largest values along the last axis, largest first."""
        from onnx import helper

        values, indices = self._name("topk"), self._name("topk_i")
        k_name = self.const(np.array([k], np.int64), "k")
        self.nodes.append(helper.make_node("TopK", [x, k_name], [values, indices], axis=-1))
        return values

    def kth_largest(self, x: str, k: int) -> str:
        """The k-th largest value along the last axis (kept as a size-1 axis)."""
        top = self.topk(x, k)
        starts, ends = self.const(np.array([k - 1], np.int64)), self.const(np.array([k], np.int64))
        axes = self.const(np.array([-1], np.int64))
        return self.op("Slice", [top, starts, ends, axes])

    def std(self, x: str, axes: Sequence[int]) -> str:
        diff = self.op("Sub", [x, self.mean(x, axes)])
        return self.op("Sqrt", [self.mean(self.op("Mul", [diff, diff]), axes)])

    def mean(self, x: str, axes: Sequence[int]) -> str:
        return self.op("ReduceMean", [x], axes=list(axes), keepdims=1)

    def flat(self, x: str) -> str:
        return self.op("Flatten", [x], axis=1)
