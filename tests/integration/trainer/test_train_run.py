"""A training run against a real MLflow (SQLite tracking store and registry in tmp)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest

from linefleet.cli import main
from linefleet_core.errors import PermanentError
from linefleet_core.wire import Approval
from trainer.run import TrainRequest, TrainResult, train_run
from trainer.tracking import Tracker
from trainer.train import load_images
from trainer.workspace import Workspace

pytestmark = pytest.mark.integration
V1 = "surface-defects@1"


@pytest.fixture(scope="module")
def trained(labelled: Workspace) -> TrainResult:
    uri = f"sqlite:///{labelled.state / 'mlflow.db'}"
    return train_run(TrainRequest(labelled, "surface-lr", uri, taxonomy=V1))


def test_run_is_logged_with_per_line_metrics_and_artifacts(
    trained: TrainResult, labelled: Workspace
) -> None:
    tracker = Tracker.open(f"sqlite:///{labelled.state / 'mlflow.db'}")
    run = tracker.client.get_run(trained.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["dataset"] == trained.dataset.hash
    assert run.data.params["taxonomy"] == V1
    lines = trained.dataset.lines()
    assert len(lines) == 2
    for key in lines:
        name = f"holdout_accuracy.{key.replace('/', '.')}"
        assert run.data.metrics[name] == pytest.approx(trained.per_line[key].accuracy)
    assert run.data.metrics["holdout_accuracy"] > 0.6  # well above chance (4 classes)
    files = {f.path for f in tracker.client.list_artifacts(trained.run_id)}
    assert {"model", "dataset", "confusion", "reference_stats.json"} <= files
    stats_path = tracker.client.download_artifacts(
        trained.run_id, "reference_stats.json", str(labelled.state / "dl")
    )
    stats = json.loads(Path(stats_path).read_text())
    assert set(stats) == {"brightness", "contrast", "sharpness", "red_balance", "blue_balance"}
    assert stats == trained.reference_stats
    version = tracker.client.get_model_version_by_alias("surface-lr", "challenger")
    assert int(version.version) == trained.registry_version == 1
    assert version.run_id == trained.run_id


def test_artifact_follows_the_contract_and_matches_the_pipeline(
    trained: TrainResult, labelled: Workspace
) -> None:
    model = onnx.load(str(trained.artifact))
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 64, 64]
    items = trained.dataset.holdout()[:10]
    x = load_images(labelled.frames, items, 64)
    probs = trained.model.predict(x)
    assert probs.shape == (10, 4)
    features = trained.model.feature_model
    from trainer.features import extract

    expected = trained.model.pipeline.predict_proba(extract(features, x))
    np.testing.assert_allclose(probs, expected, atol=1e-5)


def test_a_corrupt_mlflow_store_is_a_clear_error(labelled: Workspace, tmp_path: Path) -> None:
    bad = tmp_path / "mlflow.db"
    bad.write_bytes(os.urandom(4096))
    with pytest.raises(PermanentError, match=r"MLflow tracking store .* unusable"):
        Tracker.open(f"sqlite:///{bad}")


def test_train_cli_json_and_one_line_training(
    labelled: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = "toledo/line-1"
    args = [
        "train", "--model", "surface-lr", "--taxonomy", V1, "--state", str(labelled.state),
        "--fleet-repo", str(labelled.fleet_repo), "--tracking-uri",
        f"sqlite:///{tmp_path / 'm.db'}", "--lines", key, "--format", "json", "--no-register",
        "--backend", "features",
    ]  # fmt: skip
    capsys.readouterr()
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["registry_version"] is None
    assert sorted(doc["lines"]) == ["toledo/line-1", "toledo/line-2"]  # evaluated on every line
    bad = tmp_path / "broken.db"
    bad.write_text("not a database")
    args[args.index("--tracking-uri") + 1] = f"sqlite:///{bad}"
    assert main(args) == 1
    assert "unusable" in capsys.readouterr().err


def test_champion_follows_the_serving_catalogue_version(
    trained: TrainResult, labelled: Workspace
) -> None:
    from tests.support.minifleet import documents, load_docs
    from trainer.tracking import sync_champion

    tracker = Tracker.open(f"sqlite:///{labelled.state / 'mlflow.db'}")
    version = tracker.register(
        "surface-classifier", trained.run_id, f"model/{trained.artifact.name}"
    )
    docs = documents()
    versions = docs["fleet/models/surface-classifier.yaml"]["versions"]
    spec, _ = load_docs(docs)  # @2 serves on three lines, @1 on one; neither names a run
    result = sync_champion(tracker, spec, "surface-classifier")
    assert (result.serving, result.champion, result.changed) == (
        ("surface-classifier@2", "surface-classifier@1"),
        None,
        False,
    )
    assert result.skipped == (
        "surface-classifier@2: the catalogue names no MLflow run (mlflow_run_id)",
        "surface-classifier@1: the catalogue names no MLflow run (mlflow_run_id)",
    )
    versions[1]["mlflow_run_id"] = "0" * 32  # trained somewhere else
    versions[0]["mlflow_run_id"] = trained.run_id
    spec, _ = load_docs(docs)
    result = sync_champion(tracker, spec, "surface-classifier")
    assert (result.champion, result.version, result.changed) == (
        "surface-classifier@1",
        version,
        True,
    )
    assert result.skipped == (
        f"surface-classifier@2: its run {'0' * 32} has no registered version in {tracker.uri}",
    )
    versions[1]["mlflow_run_id"] = trained.run_id
    spec, _ = load_docs(docs)
    approval = Approval(
        by="Quality Lead <ql@acme.example>",
        via="pull request #7 (local forge)",
        commit="c" * 40,
        pull=7,
    )
    asked: list[str] = []

    def lineage(ref: str) -> Approval:
        asked.append(ref)
        return approval

    result = sync_champion(tracker, spec, "surface-classifier", lineage)
    assert (result.champion, result.version, result.skipped) == (
        "surface-classifier@2",
        version,
        (),
    )
    assert result.changed is False  # the same registry version: level-triggered, idempotent
    assert asked == ["surface-classifier@2"] and result.approval == approval
    tags = tracker.client.get_model_version("surface-classifier", str(version)).tags
    assert {k: v for k, v in tags.items() if k.startswith("linefleet.")} == {
        "linefleet.approved_by": "Quality Lead <ql@acme.example>",
        "linefleet.approved_via": "pull request #7 (local forge)",
        "linefleet.approved_commit": "c" * 40,
        "linefleet.pull_request": "7",
    }
    champion = tracker.client.get_model_version_by_alias("surface-classifier", "champion")
    assert champion.run_id == trained.run_id
    challenger = tracker.client.get_model_version_by_alias("surface-classifier", "challenger")
    assert int(challenger.version) == version  # register() set it; champion is separate


def test_champion_on_a_fleet_not_trained_here_says_what_to_do_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = Path(__file__).resolve().parents[3]  # the example fleet names runs of another store
    args = ["trainer", "champion", "--fleet-repo", str(repo), "--state", str(tmp_path)]
    assert main([*args, "--model", "surface-classifier"]) == 0
    out = capsys.readouterr().out
    assert "  skipped surface-classifier@3: its run " in out
    assert "surface-classifier: no serving version comes from a run in sqlite:///" in out
    assert "linefleet trainer promote --run RUN" in out
    code = main([*args, "--model", "surface-cn"])
    assert code == 2
    assert "--model surface-cn: not in the model catalogue (known: surface-classifier)" in (
        capsys.readouterr().err
    )
