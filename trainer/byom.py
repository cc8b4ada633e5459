"""Bring your own model: register an ONNX file trained elsewhere, then promote it like our own.

    linefleet model add detector.onnx --model yolo-surface --taxonomy surface-defects@2 \\
        --task detection --classes scratch,dent --output boxes=output0
    linefleet trainer promote --model-version yolo-surface@1

`add_model` reads the graph (opset, the input's name and shape, the outputs), builds the
catalogue entry (checked by the catalogue's own model, and against the graph the way `validate`
checks it), registers the file in MLflow's model registry (a run holding `model/<name>.onnx`
and `catalogue-entry.json`, tagged `linefleet.external`), and writes the artifact to
`fleet/artifacts/<name>-v<V>.onnx` and the entry to `fleet/models/<name>.yaml` in the fleet
repository's working tree (V is the registry's version). Nothing is written if a check fails.
`fetch_model_version` gives `trainer promote --model-version` the file and the entry back.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linefleet_core.catalogue import ModelVersion
from linefleet_core.errors import PermanentError, UsageError
from linefleet_core.graphcontract import graph_problems
from linefleet_core.taxonomy import Taxonomy
from linefleet_core.validation import input_shape_problem
from trainer.catalogue_edit import add_model_version, new_model_family
from trainer.tracking import Tracker

ENTRY = "catalogue-entry.json"
CONTRACT_FIELDS = ("taxonomy", "task", "output_classes", "input", "outputs", "opset")


@dataclass(frozen=True)
class GraphInfo:
    opset: int
    input_name: str
    input_shape: list[int | None]
    outputs: list[str]


@dataclass(frozen=True)
class AddRequest:
    onnx: Path
    model: str
    taxonomy: Taxonomy
    task: str
    classes: list[str] | None = None
    outputs: Mapping[str, str] | None = None
    """`logits`/`probabilities`, `boxes`, `score`/`map` -> graph output name."""
    color: str = "rgb"
    layout: str = "NCHW"
    resize: str = "stretch"
    normalize: Mapping[str, Any] | None = None
    tiling: Mapping[str, int] | None = None
    threshold: float | None = None
    score_thresholds: Mapping[str, float] | None = None
    box_format: str = "yolov8"
    description: str = "brought from outside linefleet"
    """The family's description when `model add` creates its catalogue file."""


@dataclass(frozen=True)
class Added:
    ref: str
    run_id: str
    artifact: str
    catalogue: Path
    entry: dict[str, Any]


def read_graph(data: bytes, where: str) -> GraphInfo:
    if not data:  # protobuf reads no bytes as an empty model: "no image input" misleads
        raise UsageError(f"{where}: empty file, not an ONNX model")
    try:
        import onnx

        model = onnx.load_model_from_string(data)
    except Exception as exc:
        raise UsageError(f"{where}: not an ONNX model ({exc})") from None
    opsets = {o.domain: o.version for o in model.opset_import}
    constants = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in constants]
    if len(inputs) != 1:
        raise UsageError(f"{where}: expected one image input, found {[i.name for i in inputs]}")
    dims = [
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
        for d in inputs[0].type.tensor_type.shape.dim
    ]
    return GraphInfo(
        int(opsets.get("", opsets.get("ai.onnx", 0))),
        inputs[0].name,
        dims,
        [o.name for o in model.graph.output],
    )


def build_entry(graph: GraphInfo, req: AddRequest, where: str) -> dict[str, Any]:
    """The catalogue fields of the model (no version, artifact or evidence yet)."""
    if len(graph.input_shape) != 4 or any(d is None for d in graph.input_shape[1:]):
        raise UsageError(
            f"{where}: input {graph.input_name!r} must be [N, C, H, W] or [N, H, W, C] with fixed "
            f"C, H, W; it is {graph.input_shape}"
        )
    shape = [1, *(int(d) for d in graph.input_shape[1:] if d is not None)]
    outputs = dict(req.outputs or {})
    if not outputs:
        first = graph.outputs[0]
        if req.task == "detection":
            outputs = {"boxes": first}
        elif req.task == "anomaly":
            outputs = {"score": first}
        else:
            outputs = {"probabilities" if first == "probabilities" else "logits": first}
    for name in outputs.values():
        if name not in graph.outputs:
            raise UsageError(f"{where}: the graph has no output {name!r} ({graph.outputs})")
    if req.threshold is not None:
        outputs_any: dict[str, Any] = {**outputs, "threshold": req.threshold}
    else:
        outputs_any = dict(outputs)
    if req.task == "detection":
        outputs_any["box_format"] = req.box_format
        if req.score_thresholds:
            outputs_any["score_thresholds"] = dict(req.score_thresholds)
    classes = req.classes or list(req.taxonomy.class_ids)
    input_spec: dict[str, Any] = {"shape": shape, "color": req.color, "name": graph.input_name}
    if req.layout != "NCHW":
        input_spec["layout"] = req.layout
    if req.resize != "stretch":
        input_spec["resize"] = req.resize
    if req.normalize:
        input_spec["normalize"] = dict(req.normalize)
    if req.tiling:
        input_spec["tiling"] = dict(req.tiling)
    entry: dict[str, Any] = {
        "taxonomy": req.taxonomy.ref,
        "task": req.task,
        "output_classes": classes,
        "input": input_spec,
        "outputs": outputs_any,
        "opset": graph.opset,
    }
    return entry


def _check(entry: dict[str, Any], data: bytes, where: str) -> None:
    """The entry as the catalogue and `validate` will judge it: every problem, or nothing."""
    import onnx
    from pydantic import ValidationError

    placeholder = {"url": "x.onnx", "sha256": "0" * 64, "size": len(data)}
    try:
        mv = ModelVersion.model_validate({"version": 1, **entry, "artifact": placeholder})
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise UsageError(f"{where}: " + "; ".join(problems)) from None
    found = list(graph_problems(onnx.load_model_from_string(data), mv))
    if (problem := input_shape_problem(mv)) is not None:
        shape = mv.input.shape
        other = "NHWC" if mv.input.layout == "NCHW" else "NCHW"
        channels = shape[3] if other == "NHWC" else shape[1]
        if shape[0] == 1 and channels in (1, 3):
            problem += f"; the graph's input {shape} looks {other}: give --layout {other}"
        found.insert(0, (("input", "shape"), problem))
    if found:
        raise UsageError(
            f"{where}: " + "; ".join(f"{'.'.join(field)}: {message}" for field, message in found)
        )


@dataclass(frozen=True)
class CheckedModel:
    """`req.onnx` read and judged as the catalogue will judge it, before anything is written."""

    data: bytes
    entry: dict[str, Any]


def check_model(req: AddRequest, fleet_repo: Path) -> CheckedModel:
    """Read `req.onnx` and check its entry and the fleet repository; raise `UsageError` naming
    the file, having written nothing (no MLflow store is opened for a model that is refused)."""
    where = str(req.onnx)
    try:
        data = req.onnx.read_bytes()
    except OSError as exc:
        raise UsageError(f"{where}: {exc.strerror or exc}") from None
    entry = build_entry(read_graph(data, where), req, where)
    _check(entry, data, where)
    if not (fleet_repo / "fleet").is_dir():
        raise UsageError(f"--fleet-repo {fleet_repo}: no fleet/ folder")
    return CheckedModel(data, entry)


def add_model(
    req: AddRequest,
    tracker: Tracker,
    fleet_repo: Path,
    *,
    run_id: str | None = None,
    alias: str = "external",
    checked: CheckedModel | None = None,
) -> Added:
    """Check (unless `checked` already is), register and catalogue `req.onnx`. With `run_id`
    (a run the caller opened and logged its own evidence to, such as `linefleet trainer
    novelty`'s fit), the file and the entry are logged to that run instead of a new one;
    `alias` is set on the new version."""
    checked = checked or check_model(req, fleet_repo)
    data, entry = checked.data, checked.entry
    run_id, version = _register(tracker, req.model, req.onnx.name, data, entry, run_id, alias)
    sha = hashlib.sha256(data).hexdigest()
    artifact = f"fleet/artifacts/{req.model}-v{version}.onnx"
    full = {
        "version": version,
        **entry,
        "artifact": {"url": artifact, "sha256": sha, "size": len(data)},
        "execution_providers": ["CPUExecutionProvider"],
        "mlflow_run_id": run_id,
    }
    ModelVersion.model_validate(full, strict=False)
    catalogue = write_catalogued(fleet_repo, req.model, full, data, req.description)
    return Added(f"{req.model}@{version}", run_id, artifact, catalogue, full)


def write_catalogued(
    fleet_repo: Path, model: str, entry: dict[str, Any], data: bytes, description: str
) -> Path:
    """Write a registered version's artifact (`entry.artifact.url`, a path in the repo) and its
    catalogue entry (a new version of `fleet/models/<model>.yaml`, or a new family)."""
    catalogue = fleet_repo / "fleet" / "models" / f"{model}.yaml"
    target = fleet_repo / str(entry["artifact"]["url"])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    if catalogue.exists():
        add_model_version(catalogue, entry)
    else:
        catalogue.parent.mkdir(parents=True, exist_ok=True)
        new_model_family(catalogue, model, entry, description)
    return catalogue


def _register(
    tracker: Tracker,
    name: str,
    filename: str,
    data: bytes,
    entry: dict[str, Any],
    run_id: str | None,
    alias: str,
) -> tuple[str, int]:
    if run_id is None:
        tags = {"linefleet.external": "true", "linefleet.taxonomy": str(entry["taxonomy"])}
        run = tracker.client.create_run(tracker.experiment(), tags=tags, run_name=f"add {name}")
        run_id = str(run.info.run_id)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            model = Path(tmp) / filename
            model.write_bytes(data)
            tracker.client.log_artifact(run_id, str(model), "model")
            doc = Path(tmp) / ENTRY
            doc.write_text(json.dumps(entry, indent=2, sort_keys=True), encoding="utf-8")
            tracker.client.log_artifact(run_id, str(doc))
        tracker.client.log_param(run_id, "model", name)
        tracker.client.set_terminated(run_id, "FINISHED")
    except Exception:
        tracker.client.set_terminated(run_id, "FAILED")
        raise
    version = tracker.register(name, run_id, f"model/{filename}", alias=alias)
    return run_id, version


@dataclass(frozen=True)
class FetchedVersion:
    model: str
    version: int
    run_id: str
    onnx: bytes
    entry: dict[str, Any]


def fetch_model_version(tracker: Tracker, ref: str) -> FetchedVersion:
    """The registered file and catalogue entry of `NAME@V` (from `model add`)."""
    from mlflow.exceptions import MlflowException

    name, _, number = ref.partition("@")
    if not name or not number.isdigit():
        raise UsageError(f"--model-version {ref!r}: expected NAME@VERSION")
    try:
        mv = tracker.client.get_model_version(name, number)
    except MlflowException:
        raise PermanentError(f"{ref}: not in the MLflow model registry at {tracker.uri}") from None
    run_id = str(mv.run_id)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tracker.client.download_artifacts(run_id, "", tmp))
        models = sorted((folder / "model").glob("*.onnx"))
        entry_file = folder / ENTRY
        if len(models) != 1 or not entry_file.exists():
            raise PermanentError(f"{ref}: run {run_id} holds no model added by `model add`")
        entry = json.loads(entry_file.read_text(encoding="utf-8"))
        return FetchedVersion(name, int(number), run_id, models[0].read_bytes(), entry)
