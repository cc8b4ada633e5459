"""`linefleet train`: build a dataset version, fit, evaluate per line, log to MLflow, register.

Exit codes: 0 trained, 1 unusable input (too few labels, corrupt MLflow store), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys

from linefleet.options import add_workspace_options, number
from linefleet_core.errors import ExitCode, UsageError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "train",
        help="train a model on the current labels; log it to MLflow as the challenger",
        description="Train on a new dataset version; metrics per line; ONNX artifact in MLflow.",
    )
    add_workspace_options(p)
    p.add_argument("--model", required=True, help="model family name, e.g. surface-classifier")
    p.add_argument("--taxonomy", help="taxonomy version (default: newest of the family's)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: SQLite under --state)")
    p.add_argument(
        "--size",
        default="auto",
        help="input size in pixels, or auto (default): 64, 96 or 128, the largest the "
        "training frames fill, so small defects on larger frames are not shrunk away",
    )
    p.add_argument(
        "--backend",
        choices=("features", "cnn", "blend"),
        default=None,
        help="features (hand-made ONNX features + a classifier, see --classifier), cnn "
        "(PyTorch), or blend (both, stacked by a logistic regression fitted out of fold, one "
        "graph; ~4x the CNN's training time and the edge cost of both); "
        "default: the better one on the benchmarks (docs/benchmarks.md)",
    )
    p.add_argument(
        "--classifier",
        choices=("logistic", "boosted"),
        default=None,
        help="features: boosted (gradient-boosted trees, default) or logistic (scaler + "
        "logistic regression: lighter, weaker on textured surfaces)",
    )
    p.add_argument(
        "--texture",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="features: add the texture statistics (along the grain, blobs, grain-free low "
        "frequencies; default on; --no-texture for a lighter model on plain surfaces)",
    )
    p.add_argument("--epochs", type=int, default=30, help="cnn: training epochs (default 30)")
    p.add_argument(
        "--lighting",
        type=number,
        default=0.0,
        help="cnn: strength of the lighting augmentation (gain, colour cast, gamma, gradient, "
        "vignette, noise), 0-1 (default 0: the network already normalises each tile's level "
        "and contrast, and full jitter cost accuracy on both benchmarks; try it for lines whose "
        "lighting drifts beyond that)",
    )
    p.add_argument(
        "--roi",
        default="0,0,1,1",
        help="cnn: region of interest x0,y0,x1,y1 as fractions of the frame (default whole)",
    )
    p.add_argument(
        "--tiles", type=int, default=1, help="cnn: tiles per side of the ROI (default 1)"
    )
    p.add_argument(
        "--max-escape",
        default="0.05",
        help="operating point (both backends): the escape rate allowed on frames the "
        "classifier did not train on (features: out of fold on every training frame, overall "
        "and on every line; cnn: a validation split); the `ok` decision is biased until it is "
        "met, and the bias is baked into the exported model (default 0.05; `argmax` for none)",
    )
    p.add_argument("--c", type=number, default=1.0, help="inverse regularisation (default 1.0)")
    p.add_argument("--lines", default="", help="train on these site/line keys only (comma list)")
    p.add_argument("--no-register", action="store_true", help="log the run, do not register")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(run=run)


def _size(text: str) -> int:
    """0 for `auto`, else the size in pixels."""
    if text == "auto":
        return 0
    if not text.isdigit() or not 16 <= int(text) <= 1024:
        raise UsageError(f"--size {text!r}: expected `auto` or pixels between 16 and 1024")
    return int(text)


def _max_escape(text: str) -> float | None:
    if text == "argmax":
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise UsageError(f"--max-escape {text!r}: expected a rate in [0, 1] or `argmax`")
    return value


def run(ns: argparse.Namespace) -> int:
    from trainer.cnn import CnnConfig
    from trainer.evidence import factory_rates, show
    from trainer.run import TrainRequest, train_run
    from trainer.tracking import default_uri
    from trainer.train import (
        DEFAULT_BACKEND,
        DEFAULT_CLASSIFIER,
        DEFAULT_TEXTURE,
        TrainConfig,
        input_note,
    )
    from trainer.workspace import Workspace

    ws = Workspace(state=ns.state, fleet_repo=ns.fleet_repo, labels_url=ns.labels)
    lines = tuple(k.strip() for k in ns.lines.split(",") if k.strip())
    try:
        x0, y0, x1, y1 = (float(v) for v in ns.roi.split(","))
    except ValueError:
        raise UsageError(f"--roi {ns.roi!r}: expected four numbers x0,y0,x1,y1") from None
    size = _size(ns.size)
    if not 0.0 <= ns.lighting <= 1.0:
        raise UsageError(f"--lighting {ns.lighting}: expected a strength from 0 to 1")
    backend = ns.backend or DEFAULT_BACKEND
    if backend == "cnn" and (ns.texture is not None or ns.classifier is not None):
        raise UsageError(
            f"--classifier and --texture apply to the features and blend backends, not {backend}"
        )
    texture = DEFAULT_TEXTURE if ns.texture is None else ns.texture
    max_escape = _max_escape(ns.max_escape)
    cnn = CnnConfig(
        size=size or 64,
        epochs=ns.epochs,
        roi=(x0, y0, x1, y1),
        tiles=ns.tiles,
        max_escape=max_escape,
        lighting=ns.lighting,
    )
    if size:
        cnn.roi_pixels()  # a bad ROI or tiling fails before the slow part
    config = TrainConfig(
        size=size, c=ns.c, lines=lines, backend=backend, cnn=cnn,
        classifier=ns.classifier or DEFAULT_CLASSIFIER, texture=texture, max_escape=max_escape,
    )  # fmt: skip
    request = TrainRequest(
        workspace=ws,
        model=ns.model,
        tracking_uri=ns.tracking_uri or default_uri(ns.state),
        taxonomy=ns.taxonomy,
        config=config,
        register=not ns.no_register,
    )
    result = train_run(request)
    if ns.format == "json":
        doc = {
            "format_version": 1,
            "dataset": result.dataset.hash,
            "taxonomy": result.dataset.taxonomy,
            "run_id": result.run_id,
            "registry_version": result.registry_version,
            "artifact": {
                "path": str(result.artifact),
                "sha256": result.sha256,
                "size": result.size,
            },
            "holdout": {"accuracy": result.overall.accuracy, "frames": result.overall.frames},
            "backend": config.backend,
            "fitted": result.model.fitted,
            "trained_on": list(result.trained_on),
            "lines": {
                k: {
                    "accuracy": s.accuracy,
                    "macro_f1": s.macro_f1,
                    "frames": s.frames,
                    "escape_rate": rates.escape.model_dump(),
                    "false_reject_rate": rates.false_reject.model_dump(),
                    "recall": {c: r.model_dump() for c, r in rates.recall.items()},
                }
                for k, s in result.per_line.items()
                for rates in [factory_rates(s.confusion, result.dataset.classes)]
            },
            "reference_stats": result.reference_stats,
        }
        json.dump(doc, sys.stdout, indent=2)
        print()
        return int(ExitCode.OK)
    ds = result.dataset
    print(
        f"dataset {ds.short} ({ds.taxonomy}): {len(ds.items)} frame(s), trained on "
        f"{result.model.train_frames} of {', '.join(result.trained_on)} ({config.backend})"
    )
    print(f"holdout accuracy {result.overall.accuracy:.3f} on {result.overall.frames} frame(s)")
    fitted = result.model.fitted
    tiled = config.backend == "cnn" and config.cnn.tiles > 1
    if not tiled and (
        note := input_note(
            int(fitted.get("frame_width_median", 0)),
            int(fitted.get("frame_height_median", 0)),
            int(fitted.get("input_size", 0)) or 1,
        )
    ):
        print(note)
    if "ok_scale" in fitted:
        print(
            f"operating point: P(ok) x {fitted['ok_scale']:.3g} (out-of-fold escape "
            f"{fitted['validation_escape']:.3f}, worst line "
            f"{fitted['validation_escape_worst_line']:.3f}, estimated "
            f"{fitted['validation_escape_worst_line_estimate']:.3f}, on "
            f"{fitted['validation_frames']} frame(s) in {fitted['validation_folds']} folds)"
        )
        if max(fitted["validation_escape"], fitted["validation_escape_worst_line_estimate"]) > (
            config.max_escape or 0.0
        ):
            print(
                f"  the target escape {config.max_escape} is not reached out of fold even at "
                "the largest bias tried: more labels or another backend"
            )
    for key, s in result.per_line.items():
        r = factory_rates(s.confusion, ds.classes)
        print(
            f"  {key:<24} accuracy {s.accuracy:.3f}  macro-F1 {s.macro_f1:.3f}  escape "
            f"{show(r.escape)}  false-reject {show(r.false_reject)}  ({s.frames})"
        )
    alias = (
        f", registered as version {result.registry_version} (challenger)"
        if (result.registry_version is not None)
        else ""
    )
    print(f"MLflow run {result.run_id}{alias}")
    print(f"artifact {result.artifact} sha256 {result.sha256[:12]} ({result.size} bytes)")
    return int(ExitCode.OK)
