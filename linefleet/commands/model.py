"""`linefleet model add FILE.onnx`: bring a model trained outside linefleet into the catalogue.

Reads the graph, registers the file in MLflow's model registry, and writes the artifact and the
catalogue entry into the fleet repository's working tree. Then `linefleet trainer promote
--model-version NAME@V` scores it on every line and opens the promotion pull request.

Exit codes: 0 added, 1 the entry is invalid for the catalogue or the graph, 2 usage.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from linefleet.options import add_workspace_options, number
from linefleet_core.errors import ExitCode, UsageError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("model", help="bring your own ONNX model into the catalogue")
    verbs = p.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    a = verbs.add_parser(
        "add",
        help="register an ONNX file in MLflow and write its catalogue entry",
        description="Read FILE.onnx (opset, input, outputs), check the declared contract "
        "against it, register it in MLflow's model registry and write fleet/artifacts/ and "
        "fleet/models/NAME.yaml in --fleet-repo. Promote it with `linefleet trainer promote "
        "--model-version NAME@V`.",
    )
    a.add_argument("file", type=Path, metavar="FILE.onnx")
    a.add_argument("--model", required=True, help="model family name (lower-case, dashes)")
    a.add_argument("--taxonomy", required=True, metavar="T@N", help="taxonomy version")
    a.add_argument(
        "--task", choices=("classification", "detection", "anomaly"), default="classification"
    )
    a.add_argument(
        "--classes",
        help="output classes in index order, comma-separated (default: the taxonomy's; "
        "detection: defect classes; anomaly: ok,CLASS)",
    )
    a.add_argument(
        "--output",
        action="append",
        default=[],
        metavar="ROLE=NAME",
        help="graph output per role: logits, probabilities, boxes, score, map (repeatable; "
        "default: the first output in the task's role)",
    )
    a.add_argument("--color", choices=("rgb", "bgr", "gray"), default="rgb")
    a.add_argument("--layout", choices=("NCHW", "NHWC"), default="NCHW")
    a.add_argument("--resize", choices=("stretch", "letterbox"), default="stretch")
    a.add_argument("--scale", type=number, help="pixel scale (default 1/255)")
    a.add_argument("--mean", help="per-channel mean after scaling, e.g. 0.485,0.456,0.406")
    a.add_argument("--std", help="per-channel std after scaling, e.g. 0.229,0.224,0.225")
    a.add_argument("--tile", metavar="SIZE[:OVERLAP]", help="tile frames (pixels)")
    a.add_argument("--threshold", type=number, help="anomaly score threshold")
    a.add_argument(
        "--score-threshold",
        action="append",
        default=[],
        metavar="CLASS=SCORE",
        help="detection: per-class score threshold (repeatable)",
    )
    a.add_argument("--box-format", choices=("yolov8", "yolov5"), default="yolov8")
    a.add_argument("--tracking-uri", help="MLflow tracking URI (default: SQLite under --state)")
    a.add_argument("--format", choices=("text", "json"), default="text")
    add_workspace_options(a)
    a.set_defaults(run=run_add)


def _floats(text: str | None, flag: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"{flag} {text!r}: comma-separated numbers") from None


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise UsageError(f"{flag} {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def run_add(ns: argparse.Namespace) -> int:
    from trainer.byom import AddRequest, add_model, check_model
    from trainer.tracking import Tracker, default_uri
    from trainer.workspace import load_taxonomies

    taxonomy = load_taxonomies(ns.fleet_repo).get(ns.taxonomy)
    if taxonomy is None:
        raise UsageError(f"--taxonomy {ns.taxonomy}: not in {ns.fleet_repo}/taxonomies")
    normalize: dict[str, Any] = {}
    if ns.scale is not None:
        normalize["scale"] = ns.scale
    for name in ("mean", "std"):
        values = _floats(getattr(ns, name), f"--{name}")
        if values is not None:
            normalize[name] = values
    tiling = None
    if ns.tile:
        size, _, overlap = ns.tile.partition(":")
        if not size.isdigit() or (overlap and not overlap.isdigit()):
            raise UsageError(f"--tile {ns.tile!r}: expected SIZE or SIZE:OVERLAP in pixels")
        tiling = {"size": int(size), "overlap": int(overlap or 0)}
    try:
        thresholds = {
            k: float(v) for k, v in _pairs(ns.score_threshold, "--score-threshold").items()
        }
    except ValueError:
        raise UsageError("--score-threshold: CLASS=SCORE with a number") from None
    request = AddRequest(
        onnx=ns.file,
        model=ns.model,
        taxonomy=taxonomy,
        task=ns.task,
        classes=ns.classes.split(",") if ns.classes else None,
        outputs=_pairs(ns.output, "--output"),
        color=ns.color,
        layout=ns.layout,
        resize=ns.resize,
        normalize=normalize or None,
        tiling=tiling,
        threshold=ns.threshold,
        score_thresholds=thresholds or None,
        box_format=ns.box_format,
    )
    checked = check_model(request, ns.fleet_repo)  # a refused model leaves no MLflow store
    tracker = Tracker.open(ns.tracking_uri or default_uri(ns.state))
    added = add_model(request, tracker, ns.fleet_repo, checked=checked)
    if ns.format == "json":
        print(
            json.dumps(
                {
                    "model_version": added.ref,
                    "mlflow_run_id": added.run_id,
                    "artifact": added.artifact,
                    "catalogue": str(added.catalogue),
                    "entry": added.entry,
                },
                indent=2,
                sort_keys=True,
            )
        )
    else:
        print(f"registered {added.ref} in MLflow (run {added.run_id})")
        print(f"wrote {added.artifact} and {added.catalogue}")
        print(f"next: linefleet trainer promote --model-version {added.ref}")
    return int(ExitCode.OK)
