"""`linefleet trainer novelty` on real MLflow (SQLite): a per-line novelty model is fitted on the
line's ok frames, recorded, registered, and catalogued the way `model add` does; the fleet
repository with its entry still validates, and the registered file scores the line's defect
frames and frames of another source above its threshold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from linefleet.cli import main
from linefleet_core.catalogue import ModelVersion
from linefleet_core.modelio import contract_of_version, decide, prepare, run_session
from linefleet_core.spec import DirectorySource, load
from tests.support.minifleet import V2, write_minifleet
from tests.support.othersource import foreign_frames
from trainer.datasets import build
from trainer.novelty import _session
from trainer.tracking import Tracker

from .conftest import labelled_workspace

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_novelty_fits_records_registers_and_catalogues_a_model_per_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    write_minifleet(repo)
    ws = labelled_workspace(
        tmp_path, 90, repo=repo, classes=V2, taxonomy="surface-defects@2", lines=(1, 2)
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = ["trainer", "novelty", "--line", "toledo/line-1", "--false-alarm-rate", "0.05"]
    argv += ["--state", str(ws.state), "--fleet-repo", str(repo), "--tracking-uri", uri]
    assert main([*argv, "--format", "json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)["novelty"]
    assert result["line"] == "toledo/line-1"
    assert result["model_version"] == "novelty-toledo-line-1@1"

    # the fleet repository's working tree holds a valid entry and its artifact
    spec, findings = load(DirectorySource(repo))
    assert [f.render() for f in findings] == []
    mv = spec.model_version("novelty-toledo-line-1@1")
    assert isinstance(mv, ModelVersion)
    assert mv.task == "anomaly" and mv.outputs.score == "score"
    assert mv.outputs.threshold == pytest.approx(result["threshold"])
    assert mv.mlflow_run_id == result["mlflow_run_id"]
    artifact = (repo / mv.artifact.url).read_bytes()

    # MLflow: the run carries the evidence; the registry version is the catalogued file
    tracker = Tracker.open(uri)
    run = tracker.client.get_run(result["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["linefleet.kind"] == "novelty"
    assert run.data.metrics["threshold"] == pytest.approx(result["threshold"])
    alarms = result["heldout_false_alarms"]
    assert run.data.metrics["heldout_false_alarm_rate"] == pytest.approx(alarms["value"])
    assert alarms["of"] >= 5 and alarms["value"] <= 0.05
    version = tracker.client.get_model_version("novelty-toledo-line-1", "1")
    assert version.run_id == result["mlflow_run_id"]
    assert "challenger" in version.aliases
    registered = Path(tracker.client.download_artifacts(version.run_id, "model", str(tmp_path)))
    assert [p.read_bytes() for p in registered.glob("*.onnx")] == [artifact]

    # served as the edge serves an anomaly model: the line's defects and foreign frames flag
    contract = contract_of_version(mv)
    session = _session(artifact)

    def novel(frame: object) -> bool:
        batch, places = prepare(frame, contract)  # type: ignore[arg-type]
        verdict = decide(contract, run_session(session, contract, batch), places)
        assert verdict.score is not None
        return verdict.label != "ok"

    store = ws.open_store()
    dataset = build(store.state(), store.taxonomies["surface-defects@2"])
    store.close()
    line_items = [i for i in dataset.items if i.line_key == "toledo/line-1"]
    defects = [novel(ws.frames.load(i.frame)) for i in line_items if i.cls != "ok"]
    held_ok = [novel(ws.frames.load(i.frame)) for i in dataset.holdout("toledo/line-1")
               if i.cls == "ok"]  # fmt: skip
    foreign = [novel(f) for f in foreign_frames(30, seed=2)]
    assert result["defects_flagged"]["of"] == len(defects)
    assert sum(defects) / len(defects) >= 0.8
    assert sum(held_ok) / len(held_ok) <= 0.05
    assert sum(foreign) == len(foreign)
