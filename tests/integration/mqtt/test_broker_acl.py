"""`linefleet broker config` on a real Mosquitto: devices see and write only their own topics."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from linefleet.cli import main
from linefleet_core.errors import PermanentError
from linefleet_core.mqttsession import retained_snapshot
from linefleet_core.mqtturl import BrokerAddress
from linefleet_core.signing import SigningKey
from reconciler.service.publish import load_revision, publish
from tests.integration.mqtt.conftest import ack
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
T = "linefleet/v1"


class Device:
    def __init__(self, broker: Mosquitto, user: str, password: str) -> None:
        self.got: dict[str, bytes] = {}
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"linefleet-device-{user}")
        self.client.username_pw_set(user, password)
        self.connected = threading.Event()
        self.client.on_message = lambda _c, _u, m: self.got.__setitem__(m.topic, bytes(m.payload))
        self.client.on_connect = lambda *_: self.connected.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def secured(
    fleet_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[Mosquitto, dict[str, str], Path]:
    out = tmp_path / "broker-config"
    port = free_port()
    argv = ["broker", "config", "--out", str(out), "--repo", str(fleet_repo), "--format", "json"]
    argv += ["--port", str(port), "--bind", "127.0.0.1", "--data-dir", str(tmp_path / "data")]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["devices"] == 3
    assert summary["new_accounts"] == [
        "dresden-edge-1",
        "linefleet-bridge-dresden",
        "linefleet-bridge-toledo",
        "linefleet-reconciler",
        "toledo-edge-1",
        "toledo-edge-2",
    ]
    (tmp_path / "data").mkdir(exist_ok=True)
    creds = json.loads((out / "credentials.json").read_text())
    assert (out / "credentials.json").stat().st_mode & 0o777 == 0o600
    config = (out / "mosquitto.conf").read_text()
    broker = Mosquitto(tmp_path / "run", port=port, config=config).start()
    return broker, creds, out


def url(broker: Mosquitto, user: str, creds: dict[str, str]) -> BrokerAddress:
    return BrokerAddress.parse(f"mqtt://{user}:{creds[user]}@{broker.host}:{broker.port}")


def test_devices_only_reach_their_own_topics(
    secured: tuple[Mosquitto, dict[str, str], Path], fleet_repo: Path
) -> None:
    broker, creds, _ = secured
    try:
        reconciler = url(broker, "linefleet-reconciler", creds)
        result = publish(load_revision(fleet_repo, "HEAD"), reconciler, SigningKey.generate(), "")
        assert result.published == 3

        a = Device(broker, "toledo-edge-1", creds["toledo-edge-1"])
        a.client.subscribe(f"{T}/toledo/toledo-edge-1/desired", 1)
        a.client.subscribe(f"{T}/toledo/toledo-edge-2/desired", 1)  # B's: must stay silent
        a.client.subscribe(f"{T}/#", 1)
        own = f"{T}/toledo/toledo-edge-1"
        mine = wait_for("its own desired state", lambda: a.got.get(f"{own}/desired"), 5)
        a.client.publish(f"{own}/reported", ack(mine), qos=1, retain=True).wait_for_publish(5)
        time.sleep(0.3)
        a.close()
        assert set(a.got) == {f"{own}/desired"}
        # Mosquitto 2.0 (queue limits off) answers a denied QoS 1 write with a PUBACK and then
        # drops the connection: each forgery gets its own connection, and either outcome is fine
        # as long as nothing lands (checked below).
        for name, payload in [
            (f"{T}/toledo/toledo-edge-2/reported", ack(mine)),  # forging B's status
            (f"{T}/toledo/toledo-edge-2/desired", b"{}"),  # overwriting B's desired state
        ]:
            forger = Device(broker, "toledo-edge-1", creds["toledo-edge-1"])
            assert forger.connected.wait(5)
            forger.client.publish(name, payload, qos=1, retain=True)
            time.sleep(0.3)
            forger.close()

        seen = retained_snapshot(reconciler, f"{T}/#", "linefleet-test-audit", quiet=0.3)
        assert f"{own}/reported" in seen
        assert f"{T}/toledo/toledo-edge-2/reported" not in seen
        b_desired = json.loads(seen[f"{T}/toledo/toledo-edge-2/desired"].payload)
        assert b_desired["device"] == "toledo-edge-2"
    finally:
        broker.stop()


def test_strangers_and_wrong_passwords_are_refused(
    secured: tuple[Mosquitto, dict[str, str], Path],
) -> None:
    broker, _, _ = secured
    try:
        for address in (
            BrokerAddress.parse(broker.url),
            BrokerAddress.parse(f"mqtt://toledo-edge-1:wrong@{broker.host}:{broker.port}"),
        ):
            with pytest.raises(PermanentError, match="refused"):
                retained_snapshot(address, f"{T}/#", "linefleet-test-stranger")
    finally:
        broker.stop()


def test_regenerating_keeps_existing_passwords(
    secured: tuple[Mosquitto, dict[str, str], Path],
    fleet_repo: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broker, creds, out = secured
    broker.stop()
    assert main(["broker", "config", "--out", str(out), "--repo", str(fleet_repo)]) == 0
    assert "0 new" in capsys.readouterr().out
    assert json.loads((out / "credentials.json").read_text()) == creds
