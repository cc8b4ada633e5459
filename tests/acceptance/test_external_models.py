"""Models trained outside linefleet, deployed through the whole path: catalogue -> validate ->
publish -> device -> results.

The example device `dresden/dresden-paint-edge-1` serves `paint-1` with a PyTorch CNN exported
by `torch.onnx` (logits, ImageNet mean/std, an ROI on one camera) and `paint-2` with a YOLO-style
detector (letterbox, per-class thresholds) with an anomaly model (NHWC, tiles) in shadow. All
three are built here, at test time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from linefleet.cli import main
from tests.support import minifleet
from tests.support.external_models import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Built,
    anomaly_model,
    torch_classifier,
    yolo_detector,
)
from tests.support.mosquitto import Mosquitto
from tests.support.waiting import until

pytestmark = [pytest.mark.acceptance, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
CLASSES = ["ok", "scratch", "dent", "dust", "oil", "discoloration"]
ROI = {"x": 0, "y": 0, "width": 40, "height": 30}


def _entry(name: str, built: Built, root: Path, **contract: Any) -> dict[str, Any]:
    return {
        "apiVersion": "linefleet.io/v1",
        "kind": "Model",
        "name": name,
        "description": "trained outside linefleet",
        "versions": [
            {
                "version": 1,
                "taxonomy": "surface-defects@2",
                "artifact": {
                    "url": str(built.path.relative_to(root)),
                    "sha256": built.sha256,
                    "size": built.size,
                },
                "opset": built.opset,
                **contract,
            }
        ],
    }


def external_fleet(root: Path) -> Path:
    """The example fleet with the three external models on dresden paint-1 and paint-2."""
    for part in ("fleet", "taxonomies"):
        shutil.copytree(REPO / part, root / part)
    art = root / "fleet" / "artifacts"
    cnn = torch_classifier(art / "ext-cnn-v1.onnx", len(CLASSES))
    yolo = yolo_detector(art / "ext-yolo-v1.onnx", 2)
    anomaly = anomaly_model(art / "ext-anomaly-v1.onnx")
    models = {
        "ext-cnn": _entry(
            "ext-cnn", cnn, root,
            output_classes=CLASSES,
            input={"shape": [1, 3, 32, 32], "color": "rgb", "name": "image",
                   "normalize": {"scale": 1 / 255, "mean": IMAGENET_MEAN, "std": IMAGENET_STD}},
            outputs={"logits": "logits"},
        ),
        "ext-yolo": _entry(
            "ext-yolo", yolo, root,
            task="detection",
            output_classes=["scratch", "dent"],
            input={"shape": [1, 3, 64, 64], "color": "rgb", "resize": "letterbox"},
            outputs={"boxes": "output0", "score_thresholds": {"scratch": 0.6, "dent": 0.9}},
        ),
        "ext-anomaly": _entry(
            "ext-anomaly", anomaly, root,
            task="anomaly",
            output_classes=["ok", "dent"],
            input={"shape": [1, 64, 64, 3], "color": "rgb", "layout": "NHWC",
                   "tiling": {"size": 64, "overlap": 16}},
            outputs={"score": "score_column", "map": "anomaly_map", "threshold": 0.6},
        ),
    }  # fmt: skip
    for name, doc in models.items():
        minifleet.write_doc(root / "fleet" / "models" / f"{name}.yaml", doc)
    lines = root / "fleet" / "sites" / "dresden" / "lines"
    paint1 = yaml.safe_load((lines / "paint-1.yaml").read_text())
    paint2 = yaml.safe_load((lines / "paint-2.yaml").read_text())
    for camera in paint1["cameras"] + paint2["cameras"]:  # what `_frames` delivers
        camera["resolution"] = {"width": 160, "height": 120}
    paint1["cameras"][0]["roi"] = ROI
    paint1["rollout"] = {"serving": "ext-cnn@1"}
    minifleet.write_doc(lines / "paint-1.yaml", paint1)
    paint2["rollout"] = {
        "serving": "ext-yolo@1",
        "candidate": {"model": "ext-anomaly@1", "stage": "shadow"},
    }
    minifleet.write_doc(lines / "paint-2.yaml", paint2)
    minifleet.init_repo(root)
    minifleet.commit_all(root, "external models on dresden paint")
    return root


def _frames(tmp_path: Path) -> Path:
    bright = np.full((120, 160, 3), 220, dtype=np.uint8)
    corner = bright.copy()
    corner[:30, :40] = 15  # dark only where deflectometry-1's ROI looks
    spot = bright.copy()
    spot[60:100, 110:150] = 10  # a dark defect
    frames = {"a-bright": bright, "b-corner": corner, "c-spot": spot}
    lines = ["cameras:"]
    for camera in ("deflectometry-1", "deflectometry-2", "left", "right", "roof"):
        folder = tmp_path / "frames" / camera
        folder.mkdir(parents=True)
        for name, image in frames.items():
            cv2.imwrite(str(folder / f"{name}.png"), image)
        lines.append(f"  {camera}: {folder}")
    path = tmp_path / "sources.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fleet with the three models, built once for this module (training takes seconds)."""
    return external_fleet(tmp_path_factory.mktemp("external") / "repo")


def _copy(root: Path, tmp_path: Path) -> Path:
    shutil.copytree(root, tmp_path / "repo")
    return tmp_path / "repo"


def test_three_external_model_kinds_deploy_and_decide_frames_on_the_example_device(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _copy(built, tmp_path)
    assert main(["validate", "--repo", str(root)]) == 0, capsys.readouterr().out
    capsys.readouterr()
    sources = _frames(tmp_path)
    assert main(["keys", "generate", "--out", str(tmp_path / "keys"), "--format", "json"]) == 0
    keys = json.loads(capsys.readouterr().out)
    results = tmp_path / "results.jsonl"
    with Mosquitto(tmp_path / "broker") as broker:
        argv = ["publish", "--broker", broker.url, "--repo", str(root)]
        assert main([*argv, "--signing-key", keys["private_key"], "--format", "json"]) == 0
        proc = subprocess.Popen(
            [sys.executable, "-m", "linefleet", "edge", "run",
             "--device", "dresden/dresden-paint-edge-1", "--broker", broker.url,
             "--state-dir", str(tmp_path / "state"), "--sources", str(sources),
             "--trust-key", keys["public_key"], "--results", str(results),
             "--artifact-root", str(root / "fleet" / "artifacts")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        decided: dict[tuple[str, str], dict[str, Any]] = {}

        def fifteen_decided() -> bool:
            if results.exists():
                for row in results.read_text().split("\n")[:-1]:
                    record = json.loads(row)
                    if record.get("label"):
                        decided[(record["camera"], record["frame_id"])] = record
            return len(decided) >= 15 or proc.poll() is not None  # exited: see below

        try:
            until(fifteen_decided, 60, interval=0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert len(decided) == 15, sorted(decided)

    def got(camera: str, frame: str) -> dict[str, Any]:
        return decided[(camera, f"{camera}/{frame}.png")]

    # the PyTorch CNN (logits, ImageNet normalisation); the ROI is per camera
    for camera in ("deflectometry-1", "deflectometry-2"):
        assert got(camera, "a-bright")["label"] == "ok"
        assert got(camera, "a-bright")["model"] == "ext-cnn@1"
    assert got("deflectometry-1", "b-corner")["label"] == "scratch"  # its ROI is the dark corner
    assert got("deflectometry-2", "b-corner")["label"] == "ok"  # the whole frame is mostly bright
    # the YOLO-style detector: boxes in frame pixels, kept in the results
    for camera in ("left", "right", "roof"):
        assert got(camera, "a-bright")["label"] == "ok"
        spot = got(camera, "c-spot")
        assert spot["label"] == "scratch" and spot["model"] == "ext-yolo@1"
        boxes = spot["serving"]["boxes"]
        assert boxes and boxes[0]["label"] == "scratch"
        x1, y1, x2, y2 = boxes[0]["box"]
        assert 115 <= x1 <= 125 and 135 <= x2 <= 145  # one 8-px cell of the letterboxed input
        assert 55 <= y1 <= 85 and 75 <= y2 <= 105  # (20 frame px) inside the dark square
        # the anomaly model in shadow on every camera of the line: its score and its decision
        assert spot["candidate"]["model"] == "ext-anomaly@1"
        assert spot["candidate"]["label"] == "dent" and spot["candidate"]["score"] > 0.6
        assert got(camera, "a-bright")["candidate"]["label"] == "ok"


def test_validate_checks_the_declared_contract_against_the_graph(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _copy(built, tmp_path)
    path = root / "fleet" / "models" / "ext-yolo.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["versions"][0]["outputs"]["boxes"] = "boxes"
    doc["versions"][0]["opset"] = 17  # the graph needs 18: a device supporting 17 would fail
    minifleet.write_doc(path, doc)
    path = root / "fleet" / "models" / "ext-anomaly.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["versions"][0]["input"]["shape"] = [1, 3, 64, 64]
    doc["versions"][0]["input"]["layout"] = "NCHW"
    minifleet.write_doc(path, doc)
    assert main(["validate", "--repo", str(root)]) == 1
    out = capsys.readouterr().out
    assert "fleet/models/ext-yolo.yaml:" in out
    assert "versions[0].opset: the graph imports opset 18, the catalogue says 17 (dev" in out
    assert "versions[0].outputs.boxes: the graph has no output 'boxes' (['output0'])" in out
    assert (
        "versions[0].input.shape: input 'input' is [1, 64, 64, 3] (NCHW); dim 1: graph 64, "
        "declared 3; dim 3: graph 3, declared 64" in out
    )
