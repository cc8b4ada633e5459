"""`model add` reads the graph before anything is registered: unreadable files are named."""

from __future__ import annotations

import pytest

from linefleet_core.errors import UsageError
from tests.support import onnx_models
from trainer.byom import read_graph


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "x.onnx: empty file, not an ONNX model"),  # was "expected one image input, found []"
        (b"hello world\n", "x.onnx: not an ONNX model"),
        (onnx_models.build()[:40], "x.onnx: not an ONNX model"),
    ],
    ids=["empty", "text", "truncated"],
)
def test_a_file_that_is_no_model_is_named(data: bytes, message: str) -> None:
    with pytest.raises(UsageError) as refused:
        read_graph(data, "x.onnx")
    assert str(refused.value).startswith(message)


def test_a_model_is_read() -> None:
    graph = read_graph(onnx_models.build(), "x.onnx")
    assert graph.opset == 13 and graph.input_name == "image"
