"""Broker identity on a real Mosquitto running `linefleet broker config` output.

- A device cannot connect with another device's client id and knock it off (password
  accounts are bound to their client id by the dynamic-security plugin; certificate accounts
  get their common name as client id).
- The generated files start as written whether Mosquitto starts as root (and drops to the
  `mosquitto` user) or runs as that user.
- `linefleet keys ca` / `keys cert` and `broker config --tls`: devices authenticate with a
  certificate from the fleet CA; without one, or with another CA's, they are refused.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from linefleet.cli import main
from linefleet_core.mqtturl import BrokerAddress
from linefleet_core.signing import SigningKey
from linefleet_core.wire import client_id
from reconciler.service.publish import load_revision, publish
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.waiting import until, wait_for

pytestmark = pytest.mark.integration
T = "linefleet/v1"
TOL1, TOL2 = f"{T}/toledo/toledo-edge-1", f"{T}/toledo/toledo-edge-2"


class Client:
    """A paho client that records whether it is connected, what it was refused, what it got."""

    def __init__(self, port: int, cid: str, *, user: str = "", password: str = "") -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid)
        if user:
            self.client.username_pw_set(user, password)
        self.port = port
        self.up = threading.Event()
        self.answered = threading.Event()
        self.refused: str | None = None
        self.dropped = threading.Event()
        self.got: dict[str, bytes] = {}
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_: self.dropped.set()
        self.client.on_message = lambda _c, _u, m: self.got.__setitem__(m.topic, bytes(m.payload))

    def _on_connect(self, _c: object, _u: object, _f: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            self.refused = str(reason)
        else:
            self.up.set()
        self.answered.set()

    def tls(self, ca: Path, cert: Path | None = None, key: Path | None = None) -> Client:
        self.client.tls_set(
            ca_certs=str(ca),
            certfile=None if cert is None else str(cert),
            keyfile=None if key is None else str(key),
            cert_reqs=ssl.CERT_REQUIRED,
        )
        return self

    def connect(self, timeout: float = 5.0) -> Client:
        try:
            self.client.connect("127.0.0.1", self.port)
        except (OSError, ssl.SSLError) as exc:  # a TLS handshake refused before MQTT
            self.refused = f"{type(exc).__name__}: {exc}"
            self.answered.set()
            return self
        self.client.loop_start()
        # a refused TLS handshake only disconnects
        until(lambda: self.answered.is_set() or self.dropped.is_set(), timeout, interval=0.01)
        return self

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def generate(repo: Path, out: Path, *extra: str) -> dict[str, object]:
    argv = ["broker", "config", "--out", str(out), "--repo", str(repo), "--bind", "127.0.0.1"]
    assert main([*argv, "--format", "json", *extra]) == 0
    return {}


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder the `mosquitto` user can traverse (pytest's own is root's, mode 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="linefleet-broker-", dir="/tmp"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_device_cannot_take_another_devices_client_id(
    fleet_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    out = tmp_path / "cfg"
    generate(fleet_repo, out, "--port", str(port), "--data-dir", str(tmp_path / "data"))
    summary = json.loads(capsys.readouterr().out)
    assert summary["client_id_binding"]
    creds = json.loads((out / "credentials.json").read_text())
    config = (out / "mosquitto.conf").read_text()
    with Mosquitto(tmp_path / "run", port=port, config=config):
        victim = Client(port, client_id("device", "toledo-edge-2"), user="toledo-edge-2",
                        password=creds["toledo-edge-2"]).connect()  # fmt: skip
        assert victim.up.is_set(), victim.refused
        thief = Client(port, client_id("device", "toledo-edge-2"), user="toledo-edge-1",
                       password=creds["toledo-edge-1"]).connect()  # fmt: skip
        assert thief.refused is not None and not thief.up.is_set()
        # nor the reconciler's persistent session
        sneak = Client(port, client_id("reconciler", "main"), user="toledo-edge-1",
                       password=creds["toledo-edge-1"]).connect()  # fmt: skip
        assert sneak.refused is not None
        time.sleep(0.5)
        assert not victim.dropped.is_set()  # never knocked off
        own = Client(port, client_id("device", "toledo-edge-1"), user="toledo-edge-1",
                     password=creds["toledo-edge-1"]).connect()  # fmt: skip
        assert own.up.is_set(), own.refused  # its own client id still works
        for c in (victim, thief, sneak, own):
            c.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start Mosquitto as root")
@pytest.mark.parametrize("how", ["started-as-root", "run-as-mosquitto"])
def test_the_generated_config_starts_as_root_or_as_the_broker_user(
    fleet_repo: Path, shared_tmp: Path, how: str, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    out, data = shared_tmp / "cfg", shared_tmp / "data"
    generate(fleet_repo, out, "--port", str(port), "--data-dir", str(data))
    assert json.loads(capsys.readouterr().out)["readable_by_broker_user"] is True
    for name in ("passwd", "dynamic-security.json", "mosquitto.conf"):
        assert (out / name).stat().st_mode & 0o777 == 0o640, name  # secrets: not world-readable
    creds = json.loads((out / "credentials.json").read_text())
    config = (out / "mosquitto.conf").read_text()
    assert "\nuser mosquitto\n" in config
    kind = {"drop_root": True} if how == "started-as-root" else {"run_as": "mosquitto"}
    broker = Mosquitto(shared_tmp / "run", port=port, config=config, **kind)
    (shared_tmp / "run").mkdir()
    (shared_tmp / "run").chmod(0o755)
    with broker:
        reconciler = BrokerAddress.parse(
            f"mqtt://linefleet-reconciler:{creds['linefleet-reconciler']}@127.0.0.1:{port}"
        )
        publish(load_revision(fleet_repo, "HEAD"), reconciler, SigningKey.generate(), "")
        device = Client(port, client_id("device", "toledo-edge-1"), user="toledo-edge-1",
                        password=creds["toledo-edge-1"]).connect()  # fmt: skip
        assert device.up.is_set(), device.refused
        device.client.subscribe(f"{TOL1}/desired", qos=1)
        wait_for("the device's desired state", lambda: f"{TOL1}/desired" in device.got, 5)
        device.close()
    assert "Error" not in broker.log(), broker.log()
    assert any(p.name.endswith(".db") for p in data.iterdir())  # persistence written


def test_device_certificates_from_the_fleet_ca(
    fleet_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pki = tmp_path / "pki"
    assert main(["keys", "ca", "--out", str(pki)]) == 0
    assert (pki / "ca.key").stat().st_mode & 0o777 == 0o600
    server = ["keys", "cert", "--ca", str(pki), "--out", str(pki), "--server"]
    assert main([*server, "--host", "127.0.0.1", "broker"]) == 0
    assert (
        main(["keys", "cert", "--ca", str(pki), "--out", str(pki), "--repo", str(fleet_repo)]) == 0
    )
    other = tmp_path / "other"
    assert main(["keys", "ca", "--out", str(other)]) == 0
    assert main(["keys", "cert", "--ca", str(other), "--out", str(other), "toledo-edge-2"]) == 0
    capsys.readouterr()
    tls_port, operator_port = free_port(), free_port()
    out = tmp_path / "cfg"
    generate(
        fleet_repo, out, "--port", "0", "--data-dir", str(tmp_path / "data"), "--tls",
        "--tls-cert", str(pki / "broker.pem"), "--tls-key", str(pki / "broker.key"),
        "--tls-ca", str(pki / "ca.pem"), "--tls-port", str(tls_port),
        "--operator-port", str(operator_port),
    )  # fmt: skip
    assert json.loads(capsys.readouterr().out)["client_certs"] is True
    creds = json.loads((out / "credentials.json").read_text())
    assert "toledo-edge-1" not in creds  # devices have no passwords: a certificate each
    config = (out / "mosquitto.conf").read_text()
    assert "require_certificate true\nuse_identity_as_username true" in config
    ca = pki / "ca.pem"

    def device(name: str, cid: str, folder: Path = pki) -> Client:
        c = Client(tls_port, cid).tls(ca, folder / f"{name}.pem", folder / f"{name}.key")
        return c.connect()

    with Mosquitto(tmp_path / "run", port=tls_port, config=config):
        os.environ["LINEFLEET_MQTT_CA"] = str(ca)
        try:
            reconciler = BrokerAddress.parse(
                f"mqtts://linefleet-reconciler:{creds['linefleet-reconciler']}"
                f"@127.0.0.1:{operator_port}"
            )
        finally:
            del os.environ["LINEFLEET_MQTT_CA"]
        publish(load_revision(fleet_repo, "HEAD"), reconciler, SigningKey.generate(), "")

        victim = device("toledo-edge-2", client_id("device", "toledo-edge-2"))
        assert victim.up.is_set(), victim.refused
        victim.client.subscribe(f"{TOL2}/desired", qos=1)
        thief = device("toledo-edge-1", client_id("device", "toledo-edge-2"))
        assert thief.up.is_set()  # connected, but as itself: the client id is its certificate's
        thief.client.subscribe([(f"{TOL2}/desired", 1), (f"{TOL1}/desired", 1)])
        time.sleep(1.0)
        assert not victim.dropped.is_set()
        assert f"{TOL2}/desired" in victim.got
        assert list(thief.got) == [f"{TOL1}/desired"]  # the ACL of its certificate's name

        anonymous = Client(tls_port, "linefleet-device-x").tls(ca).connect()
        assert not anonymous.up.is_set()
        foreign = device("toledo-edge-2", "linefleet-device-toledo-edge-2", folder=other)
        assert not foreign.up.is_set()  # a certificate from another CA
        time.sleep(0.3)
        assert not victim.dropped.is_set()
        for c in (victim, thief, anonymous, foreign):
            c.close()
