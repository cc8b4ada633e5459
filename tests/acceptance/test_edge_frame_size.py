"""A camera delivering frames at another scale than the fleet declares, end to end: a real
`linefleet edge run` on a folder, a real Mosquitto, `linefleet status` as a user runs it.

The device scales the ROI and decides the frames (`edge_puller/framesize.py`), so it runs
what git says and inspects: `status` keeps its sync `Synced` and flags its health `Degraded`
(`DeviceWarning`, naming the camera and both sizes). It showed `Failed`, which is for a device
that cannot inspect (frames of another aspect, refused: still `Failed`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from linefleet.cli import main
from linefleet_core.signing import SigningKey
from tests.integration.mqtt.conftest import retained, send
from tests.support.mosquitto import Mosquitto
from tests.support.waiting import until
from tests.unit.edge.documents import desired, line_doc
from tests.unit.edge.helpers import spec_for

pytestmark = pytest.mark.acceptance
TOPIC = "linefleet/v1/plant/dev-1/reported"


def test_frames_at_half_the_declared_size_keep_the_device_synced_and_flag_its_health(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = SigningKey.generate()
    _, public = key.write(tmp_path / "keys")
    line = line_doc(spec_for(tmp_path / "models", "inc", 1))
    line["cameras"][0]["roi"] = [32, 0, 16, 48]  # declared 64x48
    frames = tmp_path / "frames"
    frames.mkdir()
    for n in range(3):
        cv2.imwrite(str(frames / f"f{n}.png"), np.full((24, 32, 3), 220, np.uint8))  # half
    with Mosquitto(tmp_path / "broker") as broker:
        send(broker, [("linefleet/v1/plant/dev-1/desired", desired(key, 1, line), True)])
        proc = subprocess.Popen(
            [sys.executable, "-m", "linefleet", "edge", "run", "--device", "plant/dev-1",
             "--broker", broker.url, "--state-dir", str(tmp_path / "state"),
             "--frames", str(frames), "--trust-key", str(public),
             "--artifact-root", str(tmp_path / "models"), "--results", str(tmp_path / "r.jsonl")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        try:
            report: dict[str, object] = {}

            def scaled_frames_reported() -> bool:
                nonlocal report
                got = retained(broker, TOPIC, quiet=0.2).get(TOPIC)
                report = json.loads(got) if got else {}
                return proc.poll() is not None or bool(
                    report.get("applied") and report.get("warning")
                )

            until(scaled_frames_reported, 30, interval=0.3)
            assert proc.poll() is None, "the agent exited"
            capsys.readouterr()
            assert main(["status", "--broker", broker.url, "--format", "json"]) == 0
            device = json.loads(capsys.readouterr().out)["devices"][0]
            assert main(["status", "--broker", broker.url]) == 0
            table = capsys.readouterr().out
            assert main(["edge", "status", "--state-dir", str(tmp_path / "state")]) == 0
            local = capsys.readouterr().out
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    why = "frames cam-1 (plant/line-1): 32x24, the fleet declares 64x48: ROI scaled by 0.5 and decided"
    assert (report["warning"], report["error"]) == (why, "")
    assert (device["condition"], device["reason"], device["message"]) == (
        "Degraded",
        "DeviceWarning",
        why,
    )
    assert (device["sync"]["status"], device["health"]["status"]) == ("Synced", "Degraded")
    assert f"plant/dev-1: Degraded (DeviceWarning): {why}" in table
    # the operator at the line sees the same on the device, while it runs and after it stopped
    assert f"condition   Degraded (DeviceWarning): {why}\n" in local
    assert f"warning     {why} (reported " in local
    assert main(["edge", "status", "--state-dir", str(tmp_path / "state"), "--format", "json"]) == 0
    mine = json.loads(capsys.readouterr().out)
    assert (mine["condition"], mine["reason"], mine["warning"], mine["error"]) == (
        "Degraded",
        "DeviceWarning",
        why,
        "",
    )
