"""`linefleet trainer novelty` on real MLflow (SQLite): a per-line novelty model is fitted on the
line's ok frames, recorded, registered, and catalogued the way `model add` does; the fleet
repository with its entry still validates, and the registered file scores the line's defect
frames and frames of another source above its threshold."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
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
    # the line's own ok frames from a camera gone grey (three equal channels): novel
    held_frames = [ws.frames.load(i.frame) for i in dataset.holdout("toledo/line-1")
                   if i.cls == "ok"]  # fmt: skip
    greyed = [novel(cv2.cvtColor(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR))
              for f in held_frames]  # fmt: skip
    assert greyed and all(greyed)
    assert result["defects_flagged"]["of"] == len(defects)
    assert sum(defects) / len(defects) >= 0.8
    assert sum(held_ok) / len(held_ok) <= 0.05
    assert sum(foreign) == len(foreign)


def test_novelty_propose_opens_a_pr_naming_the_model_on_the_line_and_writes_nothing_locally(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import git

    from reconciler.review.check import validate

    origin = tmp_path / "origin.git"
    git.Repo.init(origin, bare=True, initial_branch="main")
    author = tmp_path / "author"
    write_minifleet(author)
    repo = git.Repo.init(author, initial_branch="main")
    with repo.config_writer() as cfg:
        cfg.set_value("user", "name", "t").set_value("user", "email", "t@example.invalid")
    repo.git.add("-A")
    repo.index.commit("fleet")
    repo.create_remote("origin", str(origin)).push("main")
    clone = tmp_path / "clone"
    git.Repo.clone_from(str(origin), clone)
    ws = labelled_workspace(
        tmp_path, 90, repo=clone, classes=V2, taxonomy="surface-defects@2", lines=(1, 2)
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = ["trainer", "novelty", "--line", "toledo/line-1", "--false-alarm-rate", "0.05"]
    argv += ["--state", str(ws.state), "--fleet-repo", str(clone), "--tracking-uri", uri]
    assert main([*argv, "--propose", "--forge", "local", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (result,) = out["novelty"]
    assert result["model_version"] == "novelty-toledo-line-1@1"
    assert out["pull_request"]["number"] >= 1
    # nothing in the working tree: the change is in the pull request only
    assert git.Repo(clone).git.status("--porcelain", "--", "fleet") == ""

    check_out = tmp_path / "check"
    git.Repo.clone_from(str(origin), check_out, branch="linefleet/novelty-toledo-line-1")
    report = validate(check_out, "origin/main", None)
    assert report.ok, [f.render() for f in report.findings]
    spec, _ = load(DirectorySource(check_out))
    novelty = spec.lines["toledo/line-1"].rollout.novelty
    assert novelty is not None and novelty.ref == "novelty-toledo-line-1@1"
    assert spec.lines["toledo/line-2"].rollout.novelty is None
    mv = spec.model_version("novelty-toledo-line-1@1")
    assert isinstance(mv, ModelVersion) and mv.task == "anomaly"
    assert mv.outputs.threshold == pytest.approx(result["threshold"])
    assert mv.mlflow_run_id == result["mlflow_run_id"]
    tracker = Tracker.open(uri)
    version = tracker.client.get_model_version("novelty-toledo-line-1", "1")
    registered = Path(tracker.client.download_artifacts(version.run_id, "model", str(tmp_path)))
    assert [p.read_bytes() for p in registered.glob("*.onnx")] == [
        (check_out / mv.artifact.url).read_bytes()
    ]
    log = git.Repo(check_out).head.commit.message
    assert "novelty-toledo-line-1@1 on toledo/line-1" in log and "threshold" in log

    # proposing again re-fits (a new registry version) and updates the same pull request
    assert main([*argv, "--propose", "--forge", "local", "--format", "json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["novelty"][0]["model_version"] == "novelty-toledo-line-1@2"
    assert again["pull_request"]["number"] == out["pull_request"]["number"]
