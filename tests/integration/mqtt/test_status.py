"""`linefleet status` against a real broker holding desired, reported and online state."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from linefleet.cli import main
from linefleet_core.signing import SigningKey
from reconciler.mqtt import BrokerAddress
from reconciler.publish import load_revision, publish
from tests.integration.mqtt.conftest import ack, retained, send
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.integration
T = "linefleet/v1"


def test_status_shows_each_condition_and_counts_bad_messages(
    fleet_repo: Path,
    mosquitto: Mosquitto,
    key: SigningKey,
    capsys: pytest.CaptureFixture[str],
) -> None:
    publish(load_revision(fleet_repo, "HEAD"), BrokerAddress.parse(mosquitto.url), key, "file:///x")
    desired = retained(mosquitto, f"{T}/+/+/desired")
    tol1 = desired[f"{T}/toledo/toledo-edge-1/desired"]
    tol2 = desired[f"{T}/toledo/toledo-edge-2/desired"]
    send(
        mosquitto,
        [
            (f"{T}/toledo/toledo-edge-1/reported", ack(tol1), True),  # Synced
            (f"{T}/toledo/toledo-edge-1/online", b'{"protocol":1,"online":true}', True),
            (f"{T}/toledo/toledo-edge-2/reported", ack(tol2, at=time.time() - 3600), True),
            (f"{T}/toledo/ghost-9/reported", ack(tol2), True),  # not in the fleet
            (f"{T}/dresden/dresden-edge-1/online", b"not json", True),
            (f"{T}/dresden/dresden-edge-1/reported", b'{"protocol": 7}', True),
        ],
    )
    argv = ["status", "--broker", mosquitto.url, "--repo", str(fleet_repo), "--quiet", "0.3"]
    assert main([*argv, "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    conditions = {d["device"]: d["condition"] for d in out["devices"]}
    assert conditions == {
        "toledo-edge-1": "Synced",
        "toledo-edge-2": "Stale",
        "dresden-edge-1": "Unknown",
    }
    assert out["rejected"] == {"unknown_device": 1, "malformed": 1, "unknown_protocol": 1}
    line = next(d for d in out["devices"] if d["device"] == "toledo-edge-1")["lines"][0]
    assert line["desired_candidate"] == "surface-cnn@3" and line["stage"] == "shadow"

    assert main(argv) == 0
    table = capsys.readouterr().out
    assert re.search(r"toledo-edge-1 +toledo/line-1 +Synced +g1 +g1 +surface-cnn@2 ", table)
    assert "toledo/toledo-edge-2: Stale (HeartbeatMissed): last seen 60m ago" in table
    assert "3 device(s): 1 Synced, 1 Stale, 1 Unknown" in table
    assert "rejected messages: 1 malformed, 1 unknown_device, 1 unknown_protocol" in table


def test_status_with_an_unreachable_broker_exits_4(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    nobody = Mosquitto(tmp_path / "x")
    assert main(["status", "--broker", nobody.url]) == 4
    assert "unreachable" in capsys.readouterr().err
