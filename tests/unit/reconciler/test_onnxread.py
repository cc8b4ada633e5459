"""`reconciler.onnxread` reads what `onnx` reads, for the fields the contract check uses.

Each model is built with `onnx.helper`, serialised, then read by both `onnx` and our reader;
the contract's view of it (opsets, inputs with element type and dimensions, outputs,
initializer names) must agree, and so must `graph_problems` for a declared contract. Bytes
that are no protobuf message raise `NotOnnx`, never anything else.
"""

from __future__ import annotations

import random
from typing import Any

import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from factory_sim.onnx_fixtures import build_classifier
from linefleet_core.graphcontract import graph_problems
from reconciler import onnxread
from tests.support import onnx_models


def view(model: Any) -> dict[str, Any]:
    def values(items: Any) -> list[Any]:
        return [
            (
                v.name,
                v.type.tensor_type.elem_type,
                [
                    (d.HasField("dim_value"), d.dim_value, d.dim_param)
                    for d in v.type.tensor_type.shape.dim
                ],
            )
            for v in items
        ]

    return {
        "opsets": [(o.domain, o.version) for o in model.opset_import],
        "inputs": values(model.graph.input),
        "outputs": values(model.graph.output),
        "initializers": [
            (t.name, t.data_location, [(e.key, e.value) for e in t.external_data])
            for t in model.graph.initializer
        ],
    }


def odd_model() -> bytes:
    """Symbolic and unknown dimensions, two domains, an int64 input, a non-tensor output."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, None, 64])
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, [-1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 7])
    seq = helper.make_tensor_sequence_value_info("seq", TensorProto.FLOAT, None)
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["x"], ["y"]),
            helper.make_node("SequenceEmpty", [], ["seq"]),
        ],
        "odd",
        [x, ids],
        [y, seq],
        initializer=[numpy_helper.from_array(__import__("numpy").zeros(3, "float32"), "w")],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    )
    return bytes(model.SerializeToString())


def external_model() -> bytes:
    """The tiny classifier with its weights moved to 'weights.bin' (ONNX external data)."""
    model = onnx.load_model_from_string(onnx_models.build())
    for tensor in model.graph.initializer:
        tensor.ClearField("raw_data")
        tensor.ClearField("float_data")
        tensor.data_location = TensorProto.EXTERNAL
        tensor.external_data.add(key="location", value="weights.bin")
        tensor.external_data.add(key="length", value="12")
    return bytes(model.SerializeToString())


MODELS = {
    "tiny": onnx_models.build(),
    "tiny gray padded": onnx_models.build(channels=1, pad_bytes=5000, classes=("ok", "x")),
    "crashing": onnx_models.build(crash_above=0.7),
    "fixture classifier": build_classifier(4).data,
    "odd": odd_model(),
    "external data": external_model(),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_reads_what_onnx_reads(name: str) -> None:
    raw = MODELS[name]
    assert view(onnxread.load(raw)) == view(onnx.load_model_from_string(raw))


def test_the_contract_check_says_the_same_through_either_reader() -> None:
    from linefleet_core.catalogue import ModelVersion

    raw = MODELS["tiny"]
    mv = ModelVersion.model_validate(
        {
            "version": 1,
            "taxonomy": "surface-defects@1",
            "opset": 12,  # the graph imports 13
            "artifact": {"url": "models/tiny.onnx", "sha256": "0" * 64, "size": len(raw)},
            "input": {"shape": [1, 3, 64, 64], "color": "rgb", "layout": "NCHW"},
            "output_classes": ["ok", "scratch"],  # the graph has 3
            "outputs": {"probabilities": "probabilities"},
        }
    )
    ours = list(graph_problems(onnxread.load(raw), mv))
    assert ours == list(graph_problems(onnx.load_model_from_string(raw), mv))
    assert len(ours) == 2  # the opset and the input shape ([1, None] output matches any K)


def test_weights_in_another_file_are_a_problem_through_either_reader() -> None:
    """`model add` registered, and `validate` passed, a model whose weights were in another
    file (an artifact is one file: devices failed to load it, or it named /etc/passwd)."""
    from linefleet_core.catalogue import ModelVersion

    raw = MODELS["external data"]
    mv = ModelVersion.model_validate(
        {
            "version": 1,
            "taxonomy": "surface-defects@1",
            "opset": 13,
            "artifact": {"url": "models/x.onnx", "sha256": "0" * 64, "size": len(raw)},
            "input": {"shape": [1, 3, 32, 32], "color": "rgb"},
            "output_classes": ["ok", "scratch", "dent"],
        }
    )
    ours = list(graph_problems(onnxread.load(raw), mv))
    assert ours == list(graph_problems(onnx.load_model_from_string(raw), mv))
    assert [(where, message.split(" keeps")[1][:40]) for where, message in ours] == [
        (("artifact",), " its data in another file ('weights.bin'")
    ]
    assert list(graph_problems(onnxread.load(MODELS["tiny"]), mv)) == []


@pytest.mark.parametrize(
    "raw",
    [b"\x00", b"\x0a\xff\x01", b"\x3a\x05abc", b"\x08" + b"\xff" * 11, b"\x0b", b"\x3a\x02\x08"],
    ids=["field 0", "length past end", "truncated message", "long varint", "group", "cut"],
)
def test_bytes_that_are_no_message_are_refused(raw: bytes) -> None:
    with pytest.raises(onnxread.NotOnnx):
        onnxread.load(raw)


def test_damaged_models_raise_not_onnx_or_read_as_onnx_does() -> None:
    rng = random.Random(17)
    base = MODELS["tiny"]
    compared = 0
    for _ in range(300):
        raw = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        cut = bytes(raw[: rng.randint(1, len(raw))]) if rng.random() < 0.3 else bytes(raw)
        try:
            ours = onnxread.load(cut)
        except onnxread.NotOnnx:
            continue
        try:
            theirs = onnx.load_model_from_string(cut)
        except Exception:  # protobuf's DecodeError is not public API
            continue  # stricter than us (e.g. UTF-8 of a field we do not read)
        assert view(ours) == view(theirs)
        compared += 1
    assert compared > 50  # most damage lands in weights and names: both read those bytes
