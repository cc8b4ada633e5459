"""`linefleet train --backend cnn`: trains (1 epoch, 48 px), exports ONNX, serves on the edge.

Kept to seconds on purpose: the real comparison of the backends is `bench/bench_backends.py`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import onnx
import pytest

from edge_puller.runtime import load_model, preprocess
from linefleet.cli import main
from tests.support.torchreq import require_torch
from tests.support.wiremodels import model_spec
from trainer.frames import FrameStore
from trainer.tracking import Tracker
from trainer.workspace import Workspace

from .conftest import labelled_workspace

pytestmark = pytest.mark.integration
V1 = "surface-defects@1"


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return labelled_workspace(tmp_path_factory.mktemp("cnn"), 20)


def test_cnn_trains_exports_and_serves_on_the_edge_runtime(
    small: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_torch()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [
        "train", "--model", "surface-classifier", "--taxonomy", V1, "--state", str(small.state),
        "--fleet-repo", str(small.fleet_repo), "--tracking-uri", uri, "--format", "json",
        "--backend", "cnn", "--epochs", "1", "--size", "48", "--roi", "0.125,0.125,0.875,0.875",
        "--tiles", "2", "--lighting", "0.5",
    ]  # fmt: skip
    capsys.readouterr()
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["backend"] == "cnn"
    line = doc["lines"]["toledo/line-1"]
    assert set(line["escape_rate"]) == {"value", "low", "high", "count", "of"}
    artifact = Path(doc["artifact"]["path"])
    assert artifact.name == f"surface-classifier-{doc['run_id']}.onnx"  # one file per run
    model = onnx.load(str(artifact))
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 48, 48] and model.graph.output[0].name == "probabilities"
    run = Tracker.open(uri).client.get_run(doc["run_id"])
    assert (run.data.params["backend"], run.data.params["cnn_tiles"]) == ("cnn", "2")
    assert run.data.params["cnn_lighting"] == "0.5"  # the augmentation asked for was used
    assert "escape_rate_high.toledo.line-1" in run.data.metrics
    assert run.data.tags["linefleet.trained_on"] == "toledo/line-1,toledo/line-2"

    # The edge's own runtime: load + smoke test, the contract's preprocessing, decisions.
    data = artifact.read_bytes()
    serves_on_the_edge(artifact, "surface-classifier@9", 48, small)

    # A second run on the same dataset keeps the first run's file.
    args[args.index("--backend") + 1] = "features"
    args[args.index("--size") + 1] = "64"
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["dataset"] == doc["dataset"] and second["run_id"] != doc["run_id"]
    assert Path(second["artifact"]["path"]) != artifact
    assert artifact.read_bytes() == data


def test_bad_roi_and_tiles_are_usage_errors(
    small: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_torch()
    base = [
        "train", "--model", "surface-classifier", "--taxonomy", V1, "--state", str(small.state),
        "--fleet-repo", str(small.fleet_repo), "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}",
        "--backend", "cnn", "--epochs", "1", "--size", "32",
    ]  # fmt: skip
    assert main([*base, "--roi", "0.5,0.5"]) == 2
    assert "--roi '0.5,0.5': expected four numbers" in capsys.readouterr().err
    assert main([*base, "--tiles", "5"]) == 1
    assert "tiles under 16 px" in capsys.readouterr().err
    assert main([*base, "--size", "8"]) == 2
    assert "--size '8': expected `auto` or pixels between 16 and 1024" in capsys.readouterr().err
    assert main([*base, "--max-escape", "1.5"]) == 2
    assert "--max-escape '1.5': expected a rate in [0, 1] or `argmax`" in capsys.readouterr().err
    assert main([*base, "--lighting", "2"]) == 2
    assert "--lighting 2.0: expected a strength from 0 to 1" in capsys.readouterr().err


@pytest.mark.slow  # ~9 s: five fits (three CNN folds, the CNN, the trees) at 32 px, 1 epoch
def test_blend_trains_one_graph_of_both_backends_that_serves_on_the_edge_runtime(
    small: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_torch()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # no --backend: blend is `linefleet train`'s default
    args = [
        "train", "--model", "surface-classifier", "--taxonomy", V1, "--state", str(small.state),
        "--fleet-repo", str(small.fleet_repo), "--tracking-uri", uri, "--format", "json",
        "--epochs", "1", "--size", "32", "--no-texture",
    ]  # fmt: skip
    capsys.readouterr()
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["backend"] == "blend" and doc["fitted"]["blend_cnn_folds"] == 3
    artifact = Path(doc["artifact"]["path"])
    model = onnx.load(str(artifact))
    assert [i.name for i in model.graph.input] == ["image"]  # one input, shared by both parts
    assert [o.name for o in model.graph.output] == ["probabilities"]
    names = {n.name for n in model.graph.initializer}
    assert any(n.startswith("bf_") for n in names) and any(n.startswith("bc_") for n in names)
    run = Tracker.open(uri).client.get_run(doc["run_id"])
    assert run.data.params["backend"] == "blend"
    assert run.data.params["classifier"] == "GradientBoosting"  # the features part's
    assert run.data.params["blend_stacker"] == "StandardScaler+LogisticRegression"

    serves_on_the_edge(artifact, "surface-classifier@10", 32, small)


def serves_on_the_edge(artifact: Path, ref: str, size: int, small: Workspace) -> None:
    """The edge's own runtime: load + smoke test, the contract's preprocessing, decisions."""
    data = artifact.read_bytes()
    classes = ("ok", "scratch", "contamination", "spot")
    spec = model_spec(
        ref=ref,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        url=artifact.as_uri(),
        classes=classes,
        input_shape=(1, 3, size, size),
    )
    served = load_model(artifact, spec)
    frames = FrameStore(small.state / "frames")
    shas = sorted(p.name for p in (small.state / "frames").glob("*/*"))[:5]
    for sha in shas:
        decision = served.predict(*preprocess(frames.load(sha), served))
        assert decision.label in classes  # the smoke test checked the probabilities sum to 1
        assert 0.0 < decision.confidence <= 1.0
