"""MLflow: one run per training, the ONNX artifact registered with the `challenger` alias.

    tracker = Tracker.open("sqlite:///state/mlflow.db")     # any tracking URI; no network
    run_id = tracker.log(record)                              # params, metrics, artifacts
    version = tracker.register("surface-classifier", run_id, "model/surface-classifier-5.onnx")

Metrics: `holdout_accuracy`, `holdout_macro_f1`, `holdout_defect_recall`, the factory
evidence (`escape_rate`, `false_reject_rate` with `_low`/`_high` 95% Wilson bounds,
`recall_<class>` and `recall_<class>_low`) overall and per line (`<metric>.<site>.<line>`).
Tags: dataset, taxonomy, `linefleet.trained_on` (the lines whose frames trained the model).
Artifacts: the ONNX model, the dataset manifest, the confusion matrices (JSON, per line and
overall), `evidence.json` (rates with intervals per line), the reference input statistics. The
registry uses aliases (`challenger` for a fresh candidate, `champion` for what serves),
never the deprecated stages. A store that cannot be read is a clear error, not a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from linefleet_core.errors import PermanentError
from linefleet_core.spec import FleetSpec
from linefleet_core.wire import Approval
from trainer.evidence import factory_rates
from trainer.metrics import Scores

EXPERIMENT = "linefleet-trainer"
CHALLENGER = "challenger"
CHAMPION = "champion"


def default_uri(state: Path) -> str:
    return f"sqlite:///{(state / 'mlflow.db').resolve()}"


@dataclass
class RunRecord:
    params: dict[str, Any]
    dataset: str
    taxonomy: str
    classes: tuple[str, ...]
    overall: Scores
    per_line: dict[str, Scores]
    model_file: Path
    manifest_file: Path
    reference_stats: dict[str, float]
    tags: dict[str, str] = field(default_factory=dict)
    trained_on: tuple[str, ...] = ()


class Tracker:
    def __init__(self, client: Any, uri: str, artifact_root: str | None) -> None:
        self.client = client
        self.uri = uri
        self.artifact_root = artifact_root

    @classmethod
    def open(cls, uri: str) -> Tracker:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        from mlflow.tracking import MlflowClient

        artifact_root = None
        if uri.startswith("sqlite:///"):
            db = Path(uri.removeprefix("sqlite:///"))
            db.parent.mkdir(parents=True, exist_ok=True)
            artifact_root = (db.parent / "mlartifacts").resolve().as_uri()
        try:
            client = MlflowClient(tracking_uri=uri, registry_uri=uri)
            client.search_experiments(max_results=1)
        except Exception as exc:  # MLflow raises many kinds: all mean "unusable store"
            raise PermanentError(
                f"MLflow tracking store {uri}: unusable ({_reason(exc)})"
            ) from None
        return cls(client, uri, artifact_root)

    def experiment(self, name: str = EXPERIMENT) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        return str(self.client.create_experiment(name, artifact_location=self.artifact_root))

    def start(self, tags: dict[str, str]) -> str:
        """Open a run (its id names the artifact before anything is logged)."""
        run = self.client.create_run(self.experiment(), tags=tags)
        run_id: str = run.info.run_id
        return run_id

    def log(self, record: RunRecord, run_id: str | None = None) -> str:
        from mlflow.entities import Metric, Param

        tags = {
            "linefleet.dataset": record.dataset,
            "linefleet.taxonomy": record.taxonomy,
            "linefleet.trained_on": ",".join(record.trained_on),
        }
        if run_id is None:
            run_id = self.start({**tags, **record.tags})
        else:
            for key, value in {**tags, **record.tags}.items():
                self.client.set_tag(run_id, key, value)
        try:
            params = [Param(k, str(v)) for k, v in sorted(record.params.items())]
            params += [Param("dataset", record.dataset), Param("taxonomy", record.taxonomy)]
            metrics = [Metric(k, v, 0, 0) for k, v in _metrics(record).items()]
            self.client.log_batch(run_id, metrics=metrics, params=params, tags=[])
            self.client.log_artifact(run_id, str(record.model_file), "model")
            self.client.log_artifact(run_id, str(record.manifest_file), "dataset")
            with tempfile.TemporaryDirectory() as tmp:
                for name, doc in _json_artifacts(record).items():
                    path = Path(tmp) / name
                    path.write_text(json.dumps(doc, indent=2, sort_keys=True), encoding="utf-8")
                    folder = "confusion" if name.startswith("confusion") else None
                    self.client.log_artifact(run_id, str(path), folder)
            self.client.set_terminated(run_id, "FINISHED")
        except Exception:
            self.client.set_terminated(run_id, "FAILED")
            raise
        return run_id

    def register(self, name: str, run_id: str, artifact_path: str, alias: str = CHALLENGER) -> int:
        """Register the run's artifact as a new version of `name`; point `alias` at it."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException:
            self.client.create_registered_model(name)
        run = self.client.get_run(run_id)
        source = f"{run.info.artifact_uri}/{artifact_path}"
        version = self.client.create_model_version(name, source, run_id=run_id)
        self.client.set_registered_model_alias(name, alias, version.version)
        return int(version.version)


@dataclass(frozen=True)
class FetchedRun:
    run_id: str
    model: str
    onnx: bytes
    manifest: Path
    reference_stats: dict[str, float]
    input_size: int
    trained_on: tuple[str, ...] = ()
    backend: str = "features"


def fetch_run(tracker: Tracker, run_id: str, dest: Path) -> FetchedRun:
    """Download what a promotion needs from a finished training run."""
    from mlflow.exceptions import MlflowException

    try:
        run = tracker.client.get_run(run_id)
    except MlflowException:
        raise PermanentError(f"MLflow run {run_id!r} not found in {tracker.uri}") from None
    if run.info.status != "FINISHED":
        raise PermanentError(f"MLflow run {run_id} is {run.info.status}, not FINISHED")
    folder = Path(tracker.client.download_artifacts(run_id, "", str(dest)))
    models = sorted((folder / "model").glob("*.onnx"))
    manifests = sorted((folder / "dataset").glob("*.json"))
    if len(models) != 1 or len(manifests) != 1:
        raise PermanentError(f"MLflow run {run_id}: expected one model and one dataset artifact")
    stats = json.loads((folder / "reference_stats.json").read_text(encoding="utf-8"))
    params = run.data.params
    return FetchedRun(
        run_id,
        params.get("model", ""),
        models[0].read_bytes(),
        manifests[0],
        {str(k): float(v) for k, v in stats.items()},
        int(params.get("input_size", "64")),
        tuple(k for k in run.data.tags.get("linefleet.trained_on", "").split(",") if k),
        params.get("backend", "features"),
    )


def _metrics(record: RunRecord) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, scores in [("", record.overall), *record.per_line.items()]:
        suffix = f".{key.replace('/', '.')}" if key else ""
        out[f"holdout_accuracy{suffix}"] = scores.accuracy
        out[f"holdout_macro_f1{suffix}"] = scores.macro_f1
        out[f"holdout_defect_recall{suffix}"] = scores.defect_recall
        out[f"holdout_frames{suffix}"] = float(scores.frames)
        out.update(factory_rates(scores.confusion, record.classes).metrics(suffix))
    return out


def _json_artifacts(record: RunRecord) -> dict[str, Any]:
    docs: dict[str, Any] = {"reference_stats.json": record.reference_stats}
    docs["evidence.json"] = {
        "trained_on": list(record.trained_on),
        "dataset": record.dataset,
        "lines": {
            key: {
                "holdout_frames": scores.frames,
                **{
                    name: rate.model_dump()
                    for name, rate in (
                        ("escape_rate", rates.escape),
                        ("false_reject_rate", rates.false_reject),
                    )
                },
                "recall": {c: r.model_dump() for c, r in rates.recall.items()},
            }
            for key, scores in [("all", record.overall), *record.per_line.items()]
            for rates in [factory_rates(scores.confusion, record.classes)]
        },
    }
    for key, scores in [("all", record.overall), *record.per_line.items()]:
        docs[f"confusion-{key.replace('/', '--')}.json"] = {
            "classes": list(record.classes),
            "rows": "truth",
            "columns": "prediction",
            "matrix": [list(r) for r in scores.confusion],
        }
    return docs


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


@dataclass(frozen=True)
class ChampionSync:
    """What `sync_champion` found and did."""

    serving: tuple[str, ...] = ()
    """Catalogue versions of the model that serve on some line, newest first."""
    champion: str | None = None
    """The catalogue version now behind the `champion` alias (None: nothing to point at)."""
    version: int | None = None
    """Its registry version."""
    changed: bool = False
    """The alias moved (False: it already pointed there, or there was nothing to do)."""
    skipped: tuple[str, ...] = ()
    """Newer serving versions passed over, each with why (no run, or not in this store)."""
    approval: Approval | None = None
    """Who approved the change that made the champion serve (tagged on its registry version)."""


def approval_tags(approval: Approval) -> dict[str, str]:
    """The registry version tags that record who approved it."""
    tags = {
        "linefleet.approved_by": approval.by,
        "linefleet.approved_via": approval.via,
        "linefleet.approved_commit": approval.commit,
    }
    if approval.pull is not None:
        tags["linefleet.pull_request"] = str(approval.pull)
    return tags


def sync_champion(
    tracker: Tracker,
    spec: FleetSpec,
    model: str,
    lineage: Callable[[str], Approval | None] | None = None,
) -> ChampionSync:
    """Point the registry's `champion` alias at what serves: level-triggered, idempotent.

    The champion is the newest catalogue version of `model` that serves on at least one
    line and comes from a run in this tracking store; its registry version is the one made
    from that run. Newer serving versions that name no run (the catalogue does not say
    `mlflow_run_id`) or a run this store does not hold are skipped, each with the reason.

    `lineage(ref)` names who approved the change that made `ref` serve; the champion's
    registry version is tagged with it (`linefleet.approved_by`, `…approved_via`,
    `…approved_commit`, `…pull_request`), so the registry shows model -> run -> approver.
    """
    serving = sorted(
        {
            mv.version: mv
            for line in spec.lines.values()
            if (mv := spec.model_version(line.rollout.serving)) is not None
            and line.rollout.serving.partition("@")[0] == model
        }.items(),
        reverse=True,
    )
    refs = tuple(f"{model}@{number}" for number, _ in serving)
    registered: dict[str, list[int]] = {}
    for found in _versions(tracker, model) if serving else ():
        registered.setdefault(str(found.run_id), []).append(int(found.version))
    skipped: list[str] = []
    for ref, (_, mv) in zip(refs, serving, strict=True):
        if not mv.mlflow_run_id:
            skipped.append(f"{ref}: the catalogue names no MLflow run (mlflow_run_id)")
            continue
        versions = registered.get(mv.mlflow_run_id)
        if not versions:
            skipped.append(
                f"{ref}: its run {mv.mlflow_run_id} has no registered version in {tracker.uri}"
            )
            continue
        version = max(versions)
        changed = _alias_version(tracker, model, CHAMPION) != version
        if changed:
            tracker.client.set_registered_model_alias(model, CHAMPION, version)
        approval = lineage(ref) if lineage is not None else None
        if approval is not None:
            for key, value in approval_tags(approval).items():
                tracker.client.set_model_version_tag(model, str(version), key, value)
        return ChampionSync(refs, ref, version, changed, tuple(skipped), approval)
    return ChampionSync(refs, skipped=tuple(skipped))


def _alias_version(tracker: Tracker, model: str, alias: str) -> int | None:
    from mlflow.exceptions import MlflowException

    try:
        return int(tracker.client.get_model_version_by_alias(model, alias).version)
    except MlflowException:
        return None


def _versions(tracker: Tracker, model: str) -> list[Any]:
    found: list[Any] = tracker.client.search_model_versions(f"name='{model}'")
    return found
