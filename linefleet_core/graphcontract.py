"""A catalogue entry's declared model contract against its ONNX graph (pure over the graph).

`graph_problems(model, version)` takes a loaded `onnx.ModelProto` (any object with its fields)
and yields (field path under the version, message) for each disagreement: the default domain's
opset; weights kept in another file (external data: an artifact is one file); the input (its
declared name, else the first non-initializer input: float, rank 4, fixed dimensions equal to
`input.shape`); the outputs the task reads (present; a classifier's
[N, K], a YOLO-style detector's [N, 4+K, boxes] or [N, boxes, 5+K]). Used by `validate`
(`reconciler/review/graphcheck.py`) and by `linefleet model add` (`trainer/byom.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from linefleet_core.catalogue import ModelVersion, output_names

FLOAT = 1  # onnx.TensorProto.FLOAT
EXTERNAL = 1  # onnx.TensorProto.EXTERNAL: a tensor whose data is in another file


def _dims(value_info: Any) -> list[int | None]:
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims]


def graph_problems(model: Any, mv: ModelVersion) -> Iterator[tuple[tuple[str, ...], str]]:
    """(field path under the version, message) for each disagreement (pure over the graph)."""
    opsets = {o.domain: o.version for o in model.opset_import}
    opset = opsets.get("", opsets.get("ai.onnx"))
    if opset is not None and opset > mv.opset:  # devices are matched on the declared opset
        yield (
            ("opset",),
            f"the graph imports opset {opset}, the catalogue says {mv.opset} (devices are "
            "checked against the catalogue's opset)",
        )
    graph = model.graph
    outside = [t for t in graph.initializer if t.data_location == EXTERNAL]
    if outside:
        where = {e.key: e.value for e in outside[0].external_data}.get("location", "?")
        more = f" (and {len(outside) - 1} more)" if len(outside) > 1 else ""
        yield (
            ("artifact",),
            f"initializer {outside[0].name!r}{more} keeps its data in another file "
            f"({where!r}), which neither the catalogue nor a device has: save the model "
            "with its weights inside (onnx.save(model, path, save_as_external_data=False))",
        )
    constants = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in constants]
    by_name = {i.name: i for i in inputs}
    declared = mv.input.name
    if declared is not None and declared not in by_name:
        yield ("input", "name"), f"the graph has no input {declared!r} ({sorted(by_name)})"
    elif not inputs:
        yield ("input",), "the graph has no input"
    else:
        tensor = by_name[declared] if declared else inputs[0]
        dims = _dims(tensor)
        if tensor.type.tensor_type.elem_type != FLOAT:
            yield ("input",), f"input {tensor.name!r} is not float32"
        if len(dims) != 4:
            yield ("input", "shape"), f"input {tensor.name!r} has rank {len(dims)}, not 4"
        else:
            wrong = [
                f"dim {n}: graph {g}, declared {d}"
                for n, (g, d) in enumerate(zip(dims, mv.input.shape, strict=True))
                if g is not None and g != d
            ]
            if wrong:
                yield (
                    ("input", "shape"),
                    f"input {tensor.name!r} is {_show(dims)} ({mv.input.layout}); "
                    + "; ".join(wrong),
                )
    outputs = {o.name: o for o in graph.output}
    names = output_names(mv.task, mv.outputs.model_dump(exclude_none=True))
    for name in names:
        if name not in outputs:
            field = _output_field(mv, name)
            yield ("outputs", field), f"the graph has no output {name!r} ({sorted(outputs)})"
    first = outputs.get(names[0])
    if first is not None:
        message = _output_shape(mv, _dims(first))
        if message:
            yield ("outputs", _output_field(mv, names[0])), f"{names[0]!r} {message}"


def _output_field(mv: ModelVersion, name: str) -> str:
    for field, value in mv.outputs.model_dump(exclude_none=True).items():
        if value == name:
            return str(field)
    return "probabilities"


def _output_shape(mv: ModelVersion, dims: list[int | None]) -> str:
    k = len(mv.output_classes)
    if mv.task == "classification" and (len(dims) != 2 or dims[1] not in (None, k)):
        return f"is {_show(dims)}; a classifier's output is [N, {k}] for {k} classes"
    if mv.task == "detection":
        v5 = mv.outputs.box_format == "yolov5"
        width = 5 + k if v5 else 4 + k
        axis = 2 if v5 else 1
        if len(dims) != 3 or dims[axis] not in (None, width):
            form = f"[N, boxes, {width}]" if v5 else f"[N, {width}, boxes]"
            return f"is {_show(dims)}; {mv.outputs.box_format} boxes for {k} classes are {form}"
    return ""


def _show(dims: list[int | None]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"
