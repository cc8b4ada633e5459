"""`linefleet edge run --sources`: the example device `dresden/dresden-paint-edge-1` (two lines,
five cameras) reads every camera at once and credits each decision to its real camera.

The example fleet (this repository's `fleet/` and `taxonomies/`, with its real ONNX artifacts) is
published by `linefleet publish` to a real Mosquitto; the agent runs as a user runs it, with a
sources file naming one frames folder per camera.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_puller.agent import Agent
from linefleet.cli import main
from linefleet_core.signing import SigningKey
from tests.support import minifleet
from tests.support.mosquitto import Mosquitto
from tests.support.waiting import until
from tests.unit.edge.documents import desired, line_doc
from tests.unit.edge.helpers import spec_for

pytestmark = pytest.mark.acceptance
REPO = Path(__file__).resolve().parents[2]
CAMERAS = {
    "dresden/paint-1": ("deflectometry-1", "deflectometry-2"),
    "dresden/paint-2": ("left", "right", "roof"),
}
PER_CAMERA = 6


def _fleet(tmp_path: Path) -> Path:
    root = tmp_path / "fleet-repo"
    for part in ("fleet", "taxonomies"):
        shutil.copytree(REPO / part, root / part)
    minifleet.init_repo(root)
    minifleet.commit_all(root, "the example fleet")
    return root


def _sources(tmp_path: Path) -> Path:
    lines = ["cameras:"]
    rng = np.random.default_rng(7)
    for cameras in CAMERAS.values():
        for camera in cameras:
            folder = tmp_path / "frames" / camera
            folder.mkdir(parents=True)
            for n in range(PER_CAMERA):
                image = rng.integers(60, 200, size=(120, 160, 3), dtype=np.uint8)
                cv2.imwrite(str(folder / f"{n:03d}.png"), image)
            lines.append(f"  {camera}: {folder}")
    path = tmp_path / "sources.yaml"
    path.write_text("\n".join(lines) + "\nqueue_frames: 2\n", encoding="utf-8")
    return path


def _edge_run(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "linefleet", "edge", "run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _results(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().split("\n")[:-1] if x]


def test_the_example_device_decides_all_five_cameras_each_credited_to_its_camera(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _fleet(tmp_path)
    sources = _sources(tmp_path)
    assert main(["keys", "generate", "--out", str(tmp_path / "keys"), "--format", "json"]) == 0
    keys = json.loads(capsys.readouterr().out)
    results = tmp_path / "results.jsonl"
    with Mosquitto(tmp_path / "broker") as broker:
        argv = ["publish", "--broker", broker.url, "--repo", str(root)]
        assert main([*argv, "--signing-key", keys["private_key"], "--format", "json"]) == 0
        capsys.readouterr()
        proc = _edge_run(
            "--device", "dresden/dresden-paint-edge-1", "--broker", broker.url,
            "--state-dir", str(tmp_path / "state"), "--sources", str(sources),
            "--trust-key", keys["public_key"], "--results", str(results),
            "--artifact-root", str(root / "fleet" / "artifacts"),
        )  # fmt: skip
        decided: list[dict[str, object]] = []

        def every_frame_decided() -> bool:
            nonlocal decided
            decided = [r for r in _results(results) if r.get("label")]
            return len(decided) >= 5 * PER_CAMERA or proc.poll() is not None  # exited: see below

        try:
            until(every_frame_decided, 60, interval=0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    per_camera = Counter(str(r["camera"]) for r in decided)
    assert per_camera == {c: PER_CAMERA for cams in CAMERAS.values() for c in cams}, per_camera
    for record in decided:
        camera = str(record["camera"])
        assert str(record["frame_id"]).startswith(f"{camera}/")  # its own frames, not another's
        assert camera in CAMERAS[str(record["line"])]  # on the line the camera belongs to
        assert record["model"] == "surface-classifier@3" or str(record["model"]).startswith(
            "surface-classifier"
        )


def test_a_bad_sources_file_is_refused_with_every_problem_located(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, public = SigningKey.generate().write(tmp_path / "keys")
    (tmp_path / "f").mkdir()
    path = tmp_path / "sources.yaml"
    path.write_text(f"cameras:\n  left: {tmp_path / 'f'}\n  Roof: 3\n  tunnel: [1]\nextra: 1\n")
    argv = ["edge", "run", "--device", "p/d", "--broker", "mqtt://127.0.0.1:1"]
    argv += ["--state-dir", str(tmp_path / "s"), "--trust-key", str(public)]
    assert main([*argv, "--sources", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:5:1: extra: unknown key" in err
    assert f"{path}:3:3: cameras.Roof: lower-case letters, digits and dashes only" in err
    assert f"{path}:4:11: cameras.tunnel: a folder, a video file, an rtsp:// URL or a USB " in err
    assert not (tmp_path / "s").exists()  # nothing half-done
    path.write_text(f"cameras:\n  left: &f {tmp_path / 'f'}\n  right: *f\n")
    assert main([*argv, "--sources", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2:9: anchors and aliases are not allowed in linefleet's YAML files" in err
    assert "fleet file" not in err  # a sources file is the device's, not a fleet file


def test_a_sources_file_that_is_a_pipe_or_too_large_is_refused_not_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--sources` named a FIFO: the agent's start blocked for ever on it; a huge file was
    read whole before the YAML reader's size check. Both are refused (exit 2), unread."""
    from linefleet_core.yamlsafe import MAX_FILE_BYTES

    _, public = SigningKey.generate().write(tmp_path / "keys")
    argv = ["edge", "run", "--device", "p/d", "--broker", "mqtt://127.0.0.1:1"]
    argv += ["--state-dir", str(tmp_path / "s"), "--trust-key", str(public)]
    os.mkfifo(tmp_path / "pipe.yaml")  # nobody writes to it
    assert main([*argv, "--sources", str(tmp_path / "pipe.yaml")]) == 2
    assert f"--sources {tmp_path / 'pipe.yaml'}: not a regular file" in capsys.readouterr().err
    big = tmp_path / "big.yaml"
    big.touch()
    os.truncate(big, MAX_FILE_BYTES + 1)  # sparse: no disk used
    assert main([*argv, "--sources", str(big)]) == 2
    assert f"--sources {big}: larger than {MAX_FILE_BYTES:,} bytes" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()  # nothing half-done


def test_a_camera_the_desired_state_does_not_have_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = SigningKey.generate()
    _, public = key.write(tmp_path / "keys")
    state = tmp_path / "state"
    agent = Agent("plant", "dev-1", state, {key.key_id: key.public}, file_roots=[tmp_path / "m"])
    agent.offer_desired(desired(key, 1, line_doc(spec_for(tmp_path / "m", "inc", 1))))
    agent.tick()
    agent.outbox.close()
    (tmp_path / "f").mkdir()
    path = tmp_path / "sources.yaml"
    path.write_text(f"cameras:\n  cam-1: {tmp_path / 'f'}\n  cam-9: {tmp_path / 'f'}\n")
    argv = ["edge", "run", "--device", "plant/dev-1", "--broker", "mqtt://127.0.0.1:1"]
    argv += ["--state-dir", str(state), "--trust-key", str(public)]
    assert main([*argv, "--sources", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"linefleet: error: {path}: cameras.cam-9: not a camera of any line this device "
        "serves (its cameras: cam-1)\n"
    )
