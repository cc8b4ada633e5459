"""`linefleet trainer watch --once`: label threshold, drift from a real broker, one run each."""

from __future__ import annotations

import json
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from linefleet.cli import main
from linefleet_core import wire
from tests.support.mosquitto import Mosquitto
from trainer.events import EventKind, NewEvent

from .conftest import labelled_workspace

pytestmark = pytest.mark.integration


def _report_drift(broker: Mosquitto, line: str, score: float) -> None:
    site = line.partition("/")[0]
    doc = {
        "protocol": 1,
        "kind": "ReportedState",
        "site": site,
        "device": "edge-1",
        "at": "2026-11-22T00:00:00Z",
        "lines": [
            {
                "line": line,
                "phase": "serving",
                "metrics": {"window_seconds": 300.0, "frames": 3000, "drift_score": score},
            }
        ],
    }
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="edge-1")
    client.connect(broker.host, broker.port)
    client.loop_start()
    topic = wire.topic(site, "edge-1", wire.Channel.REPORTED)
    client.publish(topic, json.dumps(doc), qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def test_watch_trains_once_per_dataset_version_on_labels_or_drift(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = labelled_workspace(tmp_path, 30)
    base = ["trainer", "watch", "--once", "--model", "surface-lr"]
    base += ["--taxonomy", "surface-defects@1", "--min-new-labels", "10"]
    base += ["--state", str(ws.state), "--fleet-repo", str(ws.fleet_repo)]
    assert main(base) == 0
    out = capsys.readouterr().out
    assert out.startswith("train: 60 new label(s) since the last run") and "MLflow run" in out
    assert main(base) == 0
    assert capsys.readouterr().out.startswith("already-trained:")

    store = ws.open_store()
    frame = next(iter(store.frames()))
    store.append(
        [NewEvent(EventKind.ANNOTATION, "bo", frame=frame, cls="ok", taxonomy="surface-defects@1")]
    )
    assert main(base) == 0
    assert capsys.readouterr().out.startswith("wait: 1/10 new label(s), no drift")

    with Mosquitto(tmp_path / "broker") as broker:
        _report_drift(broker, "toledo/line-2", 0.9)
        assert main([*base, "--broker", broker.url]) == 0
        out = capsys.readouterr().out
        assert out.startswith("train: drift on toledo/line-2 (worst 0.90 > 0.3)")
        assert main([*base, "--broker", broker.url]) == 0
        assert capsys.readouterr().out.startswith("already-trained:")
