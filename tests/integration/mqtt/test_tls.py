"""TLS: a generated broker config with only a TLS listener; every client over mqtts://.

The CA comes from `$LINEFLEET_MQTT_CA` (no command has a CA option), credentials from the URL
or `$LINEFLEET_MQTT_USERNAME` / `$LINEFLEET_MQTT_PASSWORD`. A client that does not trust the
broker's certificate is refused: `publish` and `status` exit 1 (a configuration error,
retrying does not help) with a one-line reason; the edge agent keeps serving offline, logs
the reason and keeps retrying.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from linefleet.cli import main
from linefleet_core.errors import TemporaryError
from linefleet_core.mqttsession import retained_snapshot
from linefleet_core.mqtturl import CA_ENV, PASSWORD_ENV, USERNAME_ENV, BrokerAddress
from linefleet_core.signing import SigningKey
from tests.support import minifleet
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.pki import write_pki
from tests.support.waiting import until

pytestmark = pytest.mark.integration
RECONCILER = "linefleet-reconciler"


class TlsBroker:
    """A Mosquitto running `linefleet broker config --tls-*` output: TLS listener only."""

    def __init__(self, repo: Path, folder: Path) -> None:
        self.ca, cert, key = write_pki(folder / "pki")
        self.port = free_port()
        out = folder / "cfg"
        argv = ["broker", "config", "--out", str(out), "--repo", str(repo), "--port", "0"]
        argv += ["--bind", "127.0.0.1", "--data-dir", str(folder / "data")]
        argv += ["--tls-cert", str(cert), "--tls-key", str(key), "--tls-port", str(self.port)]
        assert main(argv) == 0
        (folder / "data").mkdir(exist_ok=True)
        self.creds: dict[str, str] = json.loads((out / "credentials.json").read_text())
        config = (out / "mosquitto.conf").read_text()
        self.broker = Mosquitto(folder / "run", port=self.port, config=config)

    def url(self, user: str = RECONCILER, host: str = "127.0.0.1") -> str:
        return f"mqtts://{user}:{self.creds[user]}@{host}:{self.port}"


@pytest.fixture
def tls_broker(fleet_repo: Path, tmp_path: Path) -> Iterator[TlsBroker]:
    tls = TlsBroker(fleet_repo, tmp_path / "tls")
    tls.broker.start()
    try:
        yield tls
    finally:
        tls.broker.stop()


def test_publish_over_tls(
    fleet_repo: Path,
    tls_broker: TlsBroker,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    private, _ = SigningKey.generate().write(tmp_path / "keys")
    monkeypatch.setenv(CA_ENV, str(tls_broker.ca))
    capsys.readouterr()
    publish = ["publish", "--broker", tls_broker.url(), "--repo", str(fleet_repo)]
    assert main([*publish, "--signing-key", str(private), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["published"] == 3

    plain = BrokerAddress.parse(tls_broker.url().replace("mqtts://", "mqtt://"))
    with pytest.raises(TemporaryError):
        retained_snapshot(plain, "linefleet/v1/#", "linefleet-test-plain", timeout=2.0)
    monkeypatch.delenv(CA_ENV)  # the system CAs do not know our test CA
    assert main([*publish, "--signing-key", str(private)]) == 1
    assert "TLS certificate not trusted" in capsys.readouterr().err


def _edge(
    tls: TlsBroker, device: str, state: Path, frames: Path, keys: Path, ca: bool
) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", USERNAME_ENV: device}
    env[PASSWORD_ENV] = tls.creds[device]
    env.pop(CA_ENV, None)
    if ca:
        env[CA_ENV] = str(tls.ca)
    site = device.split("-")[0]
    with (state.parent / f"{device}.log").open("w") as log:  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, "-m", "linefleet", "edge", "run", "--device", f"{site}/{device}",
             "--broker", f"mqtts://localhost:{tls.port}", "--state-dir", str(state),
             "--frames", str(frames), "--trust-key", str(keys), "--line", f"{site}/line-1",
             "--results", str(state.parent / f"{device}.jsonl"),
             "--artifact-root", str(state.parent / "fleet" / "artifacts")],
            stdout=subprocess.DEVNULL, stderr=log, text=True, env=env,
        )  # fmt: skip


def _models(results: Path) -> set[str | None]:
    lines = results.read_text().splitlines() if results.exists() else []
    return {json.loads(line)["model"] for line in lines if line.endswith("}")}


def _status(url: str, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    assert main(["status", "--broker", url, "--format", "json"]) == 0
    assert gc.isenabled()  # status pauses the collector for its run only
    return {d["device"]: d["condition"] for d in json.loads(capsys.readouterr().out)["devices"]}


def test_publish_edge_and_status_over_tls_and_an_untrusting_client_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "fleet"
    minifleet.write_minifleet(root)
    minifleet.use_real_artifacts(root)
    minifleet.init_repo(root)
    minifleet.commit_all(root, "fleet with real artifacts")
    private, public = SigningKey.generate().write(tmp_path / "keys")
    frames = tmp_path / "frames"
    frames.mkdir()
    tls = TlsBroker(root, tmp_path / "tls")
    monkeypatch.setenv(CA_ENV, str(tls.ca))
    with tls.broker:
        publish = ["publish", "--broker", tls.url(), "--repo", str(root)]
        assert main([*publish, "--signing-key", str(private)]) == 0
        capsys.readouterr()
        trusting = _edge(tls, "toledo-edge-1", tmp_path / "state-1", frames, public, ca=True)
        untrusting = _edge(tls, "dresden-edge-1", tmp_path / "state-2", frames, public, ca=False)
        try:
            conditions: dict[str, str] = {}
            models: set[str | None] = set()

            def synced() -> bool:
                nonlocal conditions, models
                image = np.full((64, 64, 3), 200, dtype=np.uint8)  # one more frame to decide
                cv2.imwrite(str(frames / f"f{time.monotonic_ns()}.png"), image)
                conditions = _status(tls.url(host="localhost"), capsys)
                models = _models(tmp_path / "toledo-edge-1.jsonl")
                refused = (tmp_path / "dresden-edge-1.log").read_text()  # its first try, said
                return (
                    conditions.get("toledo-edge-1") == "Synced"
                    and "surface-classifier@2" in models
                    and "certificate verify failed" in refused
                )

            until(synced, timeout=180, interval=0.5)  # two agents start under CI load
            assert conditions.get("toledo-edge-1") == "Synced", conditions
            assert "surface-classifier@2" in models  # it inspects with what came over TLS
            assert conditions.get("dresden-edge-1") == "Unknown"  # never got through
            assert trusting.poll() is None and untrusting.poll() is None

            monkeypatch.delenv(CA_ENV)
            assert main(["status", "--broker", tls.url()]) == 1
            err = capsys.readouterr().err
            assert "TLS certificate not trusted" in err and "Traceback" not in err
        finally:
            for proc in (trusting, untrusting):
                proc.send_signal(signal.SIGTERM)
            for proc in (trusting, untrusting):
                proc.wait(timeout=30)
    logs = [(tmp_path / f"{d}.log").read_text() for d in ("toledo-edge-1", "dresden-edge-1")]
    assert trusting.returncode == 0, logs[0]
    assert untrusting.returncode == 0, logs[1]
    untrusting_log = logs[1]
    assert "certificate verify failed" in untrusting_log and "Traceback" not in untrusting_log
    assert untrusting_log.count("certificate verify failed") == 1  # said once, not per retry
