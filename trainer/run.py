"""One training run, end to end: dataset version -> fit -> evaluate -> MLflow -> registry.

    result = train_run(TrainRequest(workspace, model="surface-classifier", tracking_uri=uri))

Steps stop at the first error: an empty or one-class dataset, an unusable MLflow store, a
frame missing from the store. The artifact is written to `state/models/<model>-<run id>.onnx`
(temp + rename; one file per run, so a second run on the same dataset never overwrites the
file the first run points at) before it is logged, so a failure after fitting leaves a
usable file and no half-logged registry version.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from linefleet_core.errors import UsageError
from linefleet_core.taxonomy import Taxonomy
from trainer.datasets import DatasetVersion, build
from trainer.evaluate import ModelUnderTest, evaluate
from trainer.framestats import reference_stats
from trainer.metrics import Scores
from trainer.migrations import latest
from trainer.store import LabelStore
from trainer.tracking import CHALLENGER, RunRecord, Tracker
from trainer.train import TrainConfig, TrainedModel, fit
from trainer.workspace import Workspace


@dataclass(frozen=True)
class TrainRequest:
    workspace: Workspace
    model: str
    tracking_uri: str
    taxonomy: str | None = None
    """Default: the newest version of the taxonomy the model family uses."""
    config: TrainConfig = field(default_factory=TrainConfig)
    register: bool = True


@dataclass(frozen=True)
class TrainResult:
    dataset: DatasetVersion
    manifest: Path
    artifact: Path
    sha256: str
    size: int
    run_id: str
    registry_version: int | None
    overall: Scores
    per_line: dict[str, Scores]
    reference_stats: dict[str, float]
    model: TrainedModel
    trained_on: tuple[str, ...] = ()


def pick_taxonomy(request: TrainRequest, taxonomies: dict[str, Taxonomy]) -> Taxonomy:
    if request.taxonomy:
        found = taxonomies.get(request.taxonomy)
        if found is None:
            raise UsageError(f"--taxonomy {request.taxonomy}: no such taxonomy version")
        return found
    from linefleet_core.spec import DirectorySource, load

    spec, _ = load(DirectorySource(request.workspace.fleet_repo))
    family = spec.models.get(request.model)
    if family is None:
        raise UsageError(
            f"--model {request.model}: not in the catalogue of {request.workspace.fleet_repo} "
            "(give --taxonomy to train a new family)"
        )
    name = family.versions[-1].taxonomy.partition("@")[0]
    newest = latest(taxonomies, name)
    assert newest is not None  # the catalogue validated against its taxonomies
    return newest


def train_run(
    request: TrainRequest,
    store: LabelStore | None = None,
    version: DatasetVersion | None = None,
) -> TrainResult:
    """Train on `version` (default: the dataset version the store holds now)."""
    ws = request.workspace
    store = store or ws.open_store()
    tracker = Tracker.open(request.tracking_uri)  # fail before the slow part
    if version is None:
        taxonomy = pick_taxonomy(request, store.taxonomies)
        version = build(store.state(), taxonomy)
    manifest = version.write(ws.datasets)
    store.record_dataset(version.hash, version.taxonomy, len(version.items), version.last_event)
    model = fit(version, ws.frames, request.config)
    under_test = ModelUnderTest(
        model.onnx,
        model.size,
        model.size,
        "rgb",
        version.classes,
        version.taxonomy,
    )
    overall, per_line = evaluate(
        under_test, version.holdout(), ws.frames, version.classes, version.taxonomy,
        store.taxonomies,
    )  # fmt: skip
    train_items = [
        i for i in version.train() if not request.config.lines or i.line_key in request.config.lines
    ]
    stats = reference_stats(ws.frames.load(i.frame) for i in train_items)
    trained_on = tuple(sorted({i.line_key for i in train_items}))
    run_id = tracker.start(
        {
            "linefleet.model": request.model,
            "linefleet.dataset": version.hash,
            "linefleet.trained_on": ",".join(trained_on),
        }
    )
    artifact = _write_artifact(ws.state / "models", f"{request.model}-{run_id}", model.onnx)
    record = RunRecord(
        params={**request.config.params(), **model.fitted, "model": request.model},
        dataset=version.hash,
        taxonomy=version.taxonomy,
        classes=version.classes,
        overall=overall,
        per_line=per_line,
        model_file=artifact,
        manifest_file=manifest,
        reference_stats=stats,
        tags={"linefleet.model": request.model},
        trained_on=trained_on,
    )
    tracker.log(record, run_id)
    registry_version = (
        tracker.register(request.model, run_id, f"model/{artifact.name}", CHALLENGER)
        if request.register
        else None
    )
    return TrainResult(
        dataset=version,
        manifest=manifest,
        artifact=artifact,
        sha256=hashlib.sha256(model.onnx).hexdigest(),
        size=len(model.onnx),
        run_id=run_id,
        registry_version=registry_version,
        overall=overall,
        per_line=per_line,
        reference_stats=stats,
        model=model,
        trained_on=trained_on,
    )


def _write_artifact(folder: Path, stem: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.onnx"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path
