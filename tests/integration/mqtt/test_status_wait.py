"""`linefleet status --wait SECONDS`: block until every device has converged (Synced, or
Degraded with a warning), for CI after a publish.

Real Mosquitto; the devices' reports are retained messages written as a converged device
writes them (`conftest.ack`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from linefleet.cli import main
from linefleet_core.mqtturl import BrokerAddress
from linefleet_core.signing import SigningKey
from reconciler.service.publish import load_revision, publish
from tests.integration.mqtt.conftest import ack, retained, send
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.integration
T = "linefleet/v1"
DEVICES = ("toledo/toledo-edge-1", "toledo/toledo-edge-2", "dresden/dresden-edge-1")


def _converged(broker: Mosquitto, *devices: str) -> None:
    desired = retained(broker, f"{T}/+/+/desired")
    messages = []
    for device in devices:
        messages.append((f"{T}/{device}/reported", ack(desired[f"{T}/{device}/desired"]), True))
        messages.append((f"{T}/{device}/online", b'{"protocol":1,"online":true}', True))
    send(broker, messages)


def test_wait_fails_with_exit_1_naming_the_devices_that_are_not_synced(
    fleet_repo: Path, mosquitto: Mosquitto, key: SigningKey, capsys: pytest.CaptureFixture[str]
) -> None:
    publish(load_revision(fleet_repo, "HEAD"), BrokerAddress.parse(mosquitto.url), key, "file:///x")
    _converged(mosquitto, DEVICES[0])
    argv = ["status", "--broker", mosquitto.url, "--repo", str(fleet_repo), "--quiet", "0.3"]
    assert main([*argv, "--wait", "1.5"]) == 1
    out, err = capsys.readouterr()
    assert "3 device(s): 1 Synced, 2 Unknown" in out
    assert (
        "waiting for 2 device(s): dresden/dresden-edge-1 Unknown, toledo/toledo-edge-2 Unknown"
        in err
    )
    assert err.rstrip().endswith("not every device has converged after 1.5s")
    assert err.count("waiting for") == 1  # said again only when what is outstanding changes
    with pytest.raises(SystemExit) as refused:  # argparse: a usage error, exit 2
        main([*argv, "--wait", "-1"])
    assert refused.value.code == 2
    assert "seconds cannot be negative" in capsys.readouterr().err


def test_wait_names_a_few_devices_and_counts_the_rest(
    fleet_repo: Path,
    mosquitto: Mosquitto,
    key: SigningKey,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At 10,000 devices the line would name thousands: it names `WAIT_NAMES` of them."""
    from linefleet.commands import status as cmd

    publish(load_revision(fleet_repo, "HEAD"), BrokerAddress.parse(mosquitto.url), key, "file:///x")
    monkeypatch.setattr(cmd, "WAIT_NAMES", 1)
    argv = ["status", "--broker", mosquitto.url, "--quiet", "0.3", "--wait", "1"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "waiting for 3 device(s): dresden/dresden-edge-1 Unknown, and 2 more\n" in err


def test_wait_returns_0_once_the_last_device_reports_synced(
    fleet_repo: Path, mosquitto: Mosquitto, key: SigningKey, capsys: pytest.CaptureFixture[str]
) -> None:
    publish(load_revision(fleet_repo, "HEAD"), BrokerAddress.parse(mosquitto.url), key, "file:///x")
    _converged(mosquitto, *DEVICES[1:])
    waiting = subprocess.Popen(
        [sys.executable, "-m", "linefleet", "status", "--broker", mosquitto.url,
         "--repo", str(fleet_repo), "--wait", "120", "--quiet", "0.3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert waiting.stderr is not None
        first = waiting.stderr.readline()  # it has looked once and is waiting
        assert first == "waiting for 1 device(s): toledo/toledo-edge-1 Unknown\n"
        _converged(mosquitto, DEVICES[0])
        out, err = waiting.communicate(timeout=60)
    finally:
        waiting.kill()
    assert waiting.returncode == 0, err
    assert "3 device(s): 3 Synced" in out
    capsys.readouterr()
    argv = ["status", "--broker", mosquitto.url, "--quiet", "0.3", "--format", "json"]
    assert main([*argv, "--wait", "0"]) == 0  # checked once: all Synced


def test_an_empty_broker_is_not_a_finished_rollout(
    mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--broker", mosquitto.url, "--quiet", "0.2", "--wait", "0"]) == 1
    assert "not every device has converged" in capsys.readouterr().err


def test_a_degraded_device_has_converged_and_is_named_while_a_failed_one_has_not(
    fleet_repo: Path, mosquitto: Mosquitto, key: SigningKey, capsys: pytest.CaptureFixture[str]
) -> None:
    """CI after a publish asks: did every device apply it? A device inspecting on a scaled ROI
    (its report's `warning`: Degraded, sync Synced) did, and is named as a warning; it used to
    keep `--wait` to its timeout and exit 1. A device whose report has an `error` (Failed:
    cannot inspect) has not converged."""
    publish(load_revision(fleet_repo, "HEAD"), BrokerAddress.parse(mosquitto.url), key, "file:///x")
    _converged(mosquitto, *DEVICES[1:])
    desired = retained(mosquitto, f"{T}/+/+/desired")
    scaled = "frames toledo/line-1 cam-1: 1280x960 scaled by 0.5 and decided"
    first = f"{T}/{DEVICES[0]}"
    online = (f"{first}/online", b'{"protocol":1,"online":true}', True)
    send(
        mosquitto,
        [(f"{first}/reported", ack(desired[f"{first}/desired"], warning=scaled), True), online],
    )
    argv = ["status", "--broker", mosquitto.url, "--repo", str(fleet_repo), "--quiet", "0.3"]
    assert main([*argv, "--wait", "30"]) == 0
    out, err = capsys.readouterr()
    assert "3 device(s): 2 Synced, 1 Degraded" in out
    assert f"warning: {DEVICES[0]} converged but Degraded (DeviceWarning): {scaled}" in err
    assert "waiting for" not in err  # converged on the first read
    broken = "frames toledo/line-1 cam-1: 640x640, the model expects 4:3; not inspected"
    send(mosquitto, [(f"{first}/reported", ack(desired[f"{first}/desired"], error=broken), True)])
    assert main([*argv, "--wait", "0"]) == 1
    err = capsys.readouterr().err
    assert "waiting for" not in err and "not every device has converged after 0s" in err
