"""Bring your own model: `linefleet model add` + `linefleet trainer promote --model-version`
on real git (bare origin + clone), real MLflow on SQLite and the local forge; the pull request
passes `validate --base`."""

from __future__ import annotations

import json
from pathlib import Path

import git
import pytest

from linefleet.cli import main
from linefleet_core.spec import DirectorySource, load
from reconciler.review.check import validate
from tests.support.external_models import IMAGENET_MEAN, IMAGENET_STD, torch_classifier
from tests.support.minifleet import V2, edit_yaml, write_minifleet

from .conftest import labelled_workspace
from .test_promotion_pr import _real_incumbents

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_model_add_then_promote_model_version_opens_a_pr_that_passes_validate_base(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    origin = tmp_path / "origin.git"
    git.Repo.init(origin, bare=True, initial_branch="main")
    author = tmp_path / "author"
    write_minifleet(author)
    _real_incumbents(author)
    edit_yaml(author / "fleet/policy.yaml", lambda d: d["promotion"].__setitem__("tolerance", 0.2))
    # a shadow candidate that scores better would not be replaced (policy): start without one
    edit_yaml(
        author / "fleet/sites/toledo/lines/line-1.yaml", lambda d: d["rollout"].pop("candidate")
    )
    repo = git.Repo.init(author, initial_branch="main")
    with repo.config_writer() as cfg:
        cfg.set_value("user", "name", "t").set_value("user", "email", "t@example.invalid")
    repo.git.add("-A")
    repo.index.commit("fleet")
    repo.create_remote("origin", str(origin)).push("main")
    clone = tmp_path / "clone"
    git.Repo.clone_from(str(origin), clone)
    ws = labelled_workspace(
        tmp_path, 30, repo=clone, classes=V2, taxonomy="surface-defects@2", lines=(2, 2)
    )
    built = torch_classifier(tmp_path / "vendor" / "resnet-ish.onnx", len(V2))
    common = ["--state", str(ws.state), "--fleet-repo", str(clone)]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = ["model", "add", str(built.path), "--model", "vendor-cnn"]
    argv += ["--taxonomy", "surface-defects@2", "--output", "logits=logits"]
    argv += ["--mean", ",".join(map(str, IMAGENET_MEAN)), "--std", ",".join(map(str, IMAGENET_STD))]
    assert main([*argv, *common, "--tracking-uri", uri, "--format", "json"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert added["model_version"] == "vendor-cnn@1"
    entry = added["entry"]
    assert (entry["opset"], entry["input"]["shape"], entry["input"]["name"]) == (
        17, [1, 3, 32, 32], "image",
    )  # fmt: skip
    assert entry["outputs"] == {"logits": "logits"} and entry["output_classes"] == V2
    spec, findings = load(DirectorySource(clone))
    assert [f.render() for f in findings] == []
    assert spec.model_version("vendor-cnn@1") is not None  # the working tree has the entry
    assert (clone / "fleet/artifacts/vendor-cnn-v1.onnx").read_bytes() == built.path.read_bytes()

    promote = ["trainer", "promote", "--model-version", "vendor-cnn@1", "--forge", "local"]
    assert main([*promote, *common, "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert "pull request #" in out and "vendor-cnn@1" in out

    check_out = tmp_path / "check"
    git.Repo.clone_from(str(origin), check_out, branch="promote/vendor-cnn-1")
    report = validate(check_out, "origin/main", None)
    assert report.ok, [f.render() for f in report.findings]
    spec, _ = load(DirectorySource(check_out))
    mv = spec.model_version("vendor-cnn@1")
    assert mv is not None and mv.outputs.logits == "logits" and mv.evaluation
    assert mv.input.normalize.mean == IMAGENET_MEAN
    shadowed = [k for k, line in spec.lines.items() if line.rollout.candidate
                and line.rollout.candidate.model == "vendor-cnn@1"]  # fmt: skip
    assert sorted(shadowed) == sorted(mv.evaluation)


def test_model_add_refuses_a_contract_the_graph_does_not_have(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "repo"
    write_minifleet(root)
    built = torch_classifier(tmp_path / "m.onnx", 3)
    argv = ["model", "add", str(built.path), "--model", "bad", "--taxonomy", "surface-defects@2"]
    argv += ["--fleet-repo", str(root), "--state", str(tmp_path / "state")]
    assert main([*argv, "--output", "logits=scores"]) == 2
    err = capsys.readouterr().err
    assert "the graph has no output 'scores' (['logits'])" in err
    assert "INFO" not in err and not (tmp_path / "state").exists()  # no MLflow store made
    assert main(argv) == 2  # 3 logits for the taxonomy's 4 classes
    err = capsys.readouterr().err
    assert (
        "outputs.logits: 'logits' is [?, 3]; a classifier's output is [N, 4] for 4 classes" in err
    )
    assert not (root / "fleet/models/bad.yaml").exists()


def test_model_add_refuses_an_input_layout_validate_would_refuse_and_names_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # an anomaly model exported channels-last (anomalib, Keras); `model add` used to write an
    # NCHW entry for it that `linefleet validate` then refused (input.shape), in the fleet repo
    from tests.support.external_models import anomaly_model

    root = tmp_path / "repo"
    write_minifleet(root)
    built = anomaly_model(tmp_path / "nhwc.onnx")
    argv = ["model", "add", str(built.path), "--model", "nov", "--taxonomy", "surface-defects@2"]
    argv += ["--task", "anomaly", "--classes", "ok,scratch", "--output", "score=score_column"]
    argv += ["--threshold", "0.5", "--fleet-repo", str(root), "--state", str(tmp_path / "state")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "input.shape: expected [1, 3, height, width] for rgb input" in err
    assert "looks NHWC: give --layout NHWC" in err
    assert not (root / "fleet/models/nov.yaml").exists()
    assert main([*argv, "--layout", "NHWC"]) == 0
    assert main(["validate", "--repo", str(root)]) == 0
