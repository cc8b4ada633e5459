"""Read the few parts of an ONNX model that its contract check needs, without the `onnx` package.

`validate` compares each catalogue entry with its graph (`reconciler.graphcheck`): the opsets
imported, the graph's inputs, outputs and initializer names, and each input's and output's
element type and dimensions. Importing `onnx` for that (with numpy and ml_dtypes) took 1-2 s
of a 2-second `validate --base` on a fresh clone; this module decodes those fields straight
from the protobuf wire format (https://protobuf.dev/programming-guides/encoding/) and skips
everything else (nodes, weights) by length, unread.

`load(raw)` returns objects with the attribute names of `onnx.ModelProto` that
`linefleet_core.graphcontract.graph_problems` reads (`opset_import`, `graph.input`,
`graph.output`, `graph.initializer` (name, `data_location`, `external_data`),
`type.tensor_type.elem_type`, `shape.dim`, and a dimension's `dim_value` with `HasField`), or
raises `NotOnnx` for bytes that are not a protobuf message of that shape. Field numbers are
those of onnx/onnx.proto, frozen by ONNX's compatibility rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

VARINT, I64, LEN, I32 = 0, 1, 2, 5


class NotOnnx(ValueError):
    """The bytes are not a protobuf message, or a field has the wrong wire type."""


@dataclass
class OpsetId:
    domain: str = ""
    version: int = 0


@dataclass
class Dimension:
    dim_value: int = 0
    dim_param: str = ""
    has_value: bool = False

    def HasField(self, name: str) -> bool:  # protobuf's spelling
        return self.has_value if name == "dim_value" else bool(getattr(self, name))


@dataclass
class Shape:
    dim: list[Dimension] = field(default_factory=list)


@dataclass
class TensorType:
    elem_type: int = 0
    shape: Shape = field(default_factory=Shape)


@dataclass
class Type:
    tensor_type: TensorType = field(default_factory=TensorType)


@dataclass
class ValueInfo:
    name: str = ""
    type: Type = field(default_factory=Type)


@dataclass
class Entry:
    key: str = ""
    value: str = ""


@dataclass
class Initializer:
    name: str = ""
    data_location: int = 0  # 1: EXTERNAL, the data is in another file
    external_data: list[Entry] = field(default_factory=list)


@dataclass
class Graph:
    input: list[ValueInfo] = field(default_factory=list)
    output: list[ValueInfo] = field(default_factory=list)
    initializer: list[Initializer] = field(default_factory=list)


@dataclass
class Model:
    opset_import: list[OpsetId] = field(default_factory=list)
    graph: Graph = field(default_factory=Graph)


def load(raw: bytes) -> Model:
    """The opsets and the graph's interface of an ONNX model (`NotOnnx` if it is none)."""
    model = Model()
    for number, value in _fields(memoryview(raw)):
        if number == 8:
            model.opset_import.append(_opset(_message(value)))
        elif number == 7:
            model.graph = _graph(_message(value))
    return model


def _opset(data: memoryview) -> OpsetId:
    out = OpsetId()
    for number, value in _fields(data):
        if number == 1:
            out.domain = _text(value)
        elif number == 2:
            out.version = _signed(_int(value))
    return out


def _graph(data: memoryview) -> Graph:
    out = Graph()
    for number, value in _fields(data):
        if number == 11:
            out.input.append(_value_info(_message(value)))
        elif number == 12:
            out.output.append(_value_info(_message(value)))
        elif number == 5:
            out.initializer.append(_initializer(_message(value)))
    return out


def _initializer(data: memoryview) -> Initializer:
    """A TensorProto's name (8), external_data (13) and data_location (14); its data unread."""
    out = Initializer()
    for number, value in _fields(data):
        if number == 8:
            out.name = _text(value)
        elif number == 13:
            entry = _message(value)
            out.external_data.append(Entry(_name(entry, 1), _name(entry, 2)))
        elif number == 14:
            out.data_location = _int(value)
    return out


def _name(data: memoryview, number: int) -> str:
    found = ""
    for at, value in _fields(data):
        if at == number:
            found = _text(value)
    return found


def _value_info(data: memoryview) -> ValueInfo:
    out = ValueInfo()
    for number, value in _fields(data):
        if number == 1:
            out.name = _text(value)
        elif number == 2:
            for kind, tensor in _fields(_message(value)):
                if kind == 1:  # tensor_type (sequences, maps and the like have no contract)
                    out.type.tensor_type = _tensor_type(_message(tensor))
    return out


def _tensor_type(data: memoryview) -> TensorType:
    out = TensorType()
    for number, value in _fields(data):
        if number == 1:
            out.elem_type = _signed(_int(value))
        elif number == 2:
            out.shape = Shape(
                [_dimension(_message(dim)) for at, dim in _fields(_message(value)) if at == 1]
            )
    return out


def _dimension(data: memoryview) -> Dimension:
    out = Dimension()
    for number, value in _fields(data):
        if number == 1:  # dim_value and dim_param are a oneof: the last one set wins
            out.dim_value, out.dim_param, out.has_value = _signed(_int(value)), "", True
        elif number == 2:
            out.dim_value, out.dim_param, out.has_value = 0, _text(value), False
    return out


Value = int | memoryview


def _fields(data: memoryview) -> Iterator[tuple[int, Value]]:
    """(field number, value) of each field: an int for varint and fixed-size fields, the
    bytes (unread) for length-delimited ones."""
    at, end = 0, len(data)
    while at < end:
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise NotOnnx(f"field number 0 at byte {at}")
        if wire == VARINT:
            value, at = _varint(data, at)
            yield number, value
        elif wire == LEN:
            size, at = _varint(data, at)
            if at + size > end:
                raise NotOnnx(f"a field of {size} bytes runs past the end of its message")
            yield number, data[at : at + size]
            at += size
        elif wire in (I64, I32):
            width = 8 if wire == I64 else 4
            if at + width > end:
                raise NotOnnx("truncated fixed-size field")
            yield number, int.from_bytes(data[at : at + width], "little")
            at += width
        else:
            raise NotOnnx(f"unsupported wire type {wire} (field {number})")


def _varint(data: memoryview, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data):
            raise NotOnnx("truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7
        if shift >= 70:
            raise NotOnnx("varint longer than 10 bytes")


def _message(value: Value) -> memoryview:
    if isinstance(value, int):
        raise NotOnnx("a number where a message was expected")
    return value


def _int(value: Value) -> int:
    if not isinstance(value, int):
        raise NotOnnx("a length-delimited field where a number was expected")
    return value


def _signed(value: int) -> int:
    """An int64 as protobuf encodes it (two's complement in 64 bits)."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def _text(value: Value) -> str:
    try:
        return bytes(_message(value)).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotOnnx(f"a string field is not UTF-8: {exc}") from None
