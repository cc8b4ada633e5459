"""A site broker bridged to the central one (two real Mosquitto processes, generated configs)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from linefleet.cli import main
from linefleet_core.errors import PermanentError
from linefleet_core.mqttsession import Outgoing, Session, retained_snapshot
from linefleet_core.mqtturl import BrokerAddress
from linefleet_core.signing import SigningKey, verify
from linefleet_core.wire import client_id
from reconciler.service.publish import load_revision, publish
from tests.integration.mqtt.conftest import ack
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.waiting import until

pytestmark = pytest.mark.integration
TOL1 = "linefleet/v1/toledo/toledo-edge-1"


def configure(repo: Path, out: Path, port: int, *extra: str) -> str:
    argv = ["broker", "config", "--out", str(out), "--repo", str(repo), "--port", str(port)]
    argv += ["--bind", "127.0.0.1", "--data-dir", str(out / "data"), *extra]
    assert main(argv) == 0
    (out / "data").mkdir(exist_ok=True)
    return (out / "mosquitto.conf").read_text()


class Net:
    def __init__(self, creds: dict[str, str]) -> None:
        self.creds = creds

    def at(self, broker: Mosquitto, user: str) -> BrokerAddress:
        password = self.creds[user]
        return BrokerAddress.parse(f"mqtt://{user}:{password}@{broker.host}:{broker.port}")

    def read(self, broker: Mosquitto, user: str, topic: str) -> bytes | None:
        # a device account may only use its own client id (dynamic-security binding)
        cid = user if user.startswith("linefleet-") else client_id("device", user)
        cid = f"t-{time.monotonic_ns()}" if cid == user else cid
        try:
            snap = retained_snapshot(self.at(broker, user), topic, cid)
        except (PermanentError, OSError):
            return None
        message = snap.get(topic)
        return None if message is None else message.payload


def test_a_site_converges_without_the_centre_and_reports_after_reconnection(
    fleet_repo: Path, tmp_path: Path, key: SigningKey, capsys: pytest.CaptureFixture[str]
) -> None:
    central_port, site_port = free_port(), free_port()
    central_cfg = configure(fleet_repo, tmp_path / "central-cfg", central_port)
    creds_file = tmp_path / "central-cfg" / "credentials.json"
    site_cfg = configure(
        fleet_repo,
        tmp_path / "site-cfg",
        site_port,
        "--site", "toledo",
        "--central", f"mqtt://127.0.0.1:{central_port}",
        "--credentials", str(creds_file),
    )  # fmt: skip
    capsys.readouterr()
    assert "connection linefleet-toledo" in site_cfg and "dresden" not in site_cfg
    net = Net(json.loads(creds_file.read_text()))
    central = Mosquitto(tmp_path / "central", port=central_port, config=central_cfg).start()
    site = Mosquitto(tmp_path / "site", port=site_port, config=site_cfg).start()
    try:
        reconciler = net.at(central, "linefleet-reconciler")
        publish(load_revision(fleet_repo, "HEAD"), reconciler, key, "file:///x")
        assert until(lambda: net.read(site, "toledo-edge-1", f"{TOL1}/desired") is not None)
        # the site broker never holds another site's state
        assert (
            net.read(site, "dresden-edge-1", "linefleet/v1/dresden/dresden-edge-1/desired") is None
        )

        central.stop()  # the bridge is cut
        payload = net.read(site, "toledo-edge-1", f"{TOL1}/desired")
        assert payload is not None
        doc = verify(payload, {key.key_id: key.public}, device="toledo-edge-1")
        with Session(net.at(site, "toledo-edge-1"), "linefleet-device-toledo-edge-1") as device:
            device.connect()
            device.publish_all([Outgoing(f"{TOL1}/reported", ack(payload))])
        site.restart()  # even a site broker restart keeps the desired state
        assert net.read(site, "toledo-edge-1", f"{TOL1}/desired") == payload

        central.start()
        reported = lambda: net.read(central, "linefleet-reconciler", f"{TOL1}/reported")  # noqa: E731
        assert until(lambda: reported() is not None)
        report = json.loads(reported() or b"{}")
        assert report["applied"]["content_hash"] == doc.content_hash
    finally:
        site.stop()
        central.stop()
