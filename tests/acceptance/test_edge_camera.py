"""`linefleet edge run --frames N` with the camera missing, as when a USB camera is unplugged.

The machines that run this suite have no camera, so the camera index below cannot be opened:
the agent must still start, converge to its desired state and report, and say in its reported
`error` (shown by `linefleet status`) that no frames come in. What the camera loop does with a
capture that stops and comes back is tested in `tests/unit/edge/test_edge_frames.py` against a
real `cv2.VideoCapture` over a video file; reading from a real camera is not tested.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from linefleet.cli import main
from linefleet_core.signing import SigningKey
from tests.integration.mqtt.conftest import retained, send
from tests.support.mosquitto import Mosquitto
from tests.support.waiting import until
from tests.unit.edge.documents import desired, line_doc
from tests.unit.edge.helpers import spec_for

pytestmark = pytest.mark.acceptance
CAMERA = "63"


def test_an_agent_without_its_camera_converges_reports_it_and_stops_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if Path(f"/dev/video{CAMERA}").exists():
        pytest.skip(f"this machine has a camera at index {CAMERA}")
    key = SigningKey.generate()
    _, public = key.write(tmp_path / "keys")
    model = spec_for(tmp_path / "models", "inc", 1)
    document = desired(key, 1, line_doc(model))
    reported_topic = "linefleet/v1/plant/dev-1/reported"
    with Mosquitto(tmp_path / "broker") as broker:
        send(broker, [("linefleet/v1/plant/dev-1/desired", document, True)])
        proc = subprocess.Popen(
            [sys.executable, "-m", "linefleet", "edge", "run", "--device", "plant/dev-1",
             "--broker", broker.url, "--state-dir", str(tmp_path / "state"),
             "--frames", CAMERA, "--trust-key", str(public),
             "--artifact-root", str(tmp_path / "models")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        try:
            report: dict[str, object] = {}

            def camera_trouble_reported() -> bool:
                nonlocal report
                got = retained(broker, reported_topic, quiet=0.2).get(reported_topic)
                report = json.loads(got) if got else {}
                if proc.poll() is not None:
                    return True  # exited: the assertion below says so
                return bool(report.get("applied")) and "camera" in str(report.get("error"))

            until(camera_trouble_reported, 30, interval=0.3)
            assert proc.poll() is None, "the agent exited without its camera"
            assert report.get("applied"), f"no converged report: {report}"
            capsys.readouterr()
            assert main(["status", "--broker", broker.url, "--format", "json"]) == 0
            device = json.loads(capsys.readouterr().out)["devices"][0]
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert f"frames camera{CAMERA}: OpenCV cannot open {CAMERA}; retrying" in err  # logged once
    assert err.count("OpenCV cannot open") == 1
    assert report["error"] == f"frames camera{CAMERA}: OpenCV cannot open {CAMERA}; retrying"
    assert report["applied"]["generation"] == 1  # type: ignore[index]
    assert device["condition"] == "Failed"
    assert "OpenCV cannot open" in device["message"]
