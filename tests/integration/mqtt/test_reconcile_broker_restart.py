"""The reconcile loop rides out a broker restart: it republishes and keeps listening."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from linefleet_core.mqtturl import BrokerAddress
from linefleet_core.signing import SigningKey
from reconciler.service.reconcile import Reconciler, Settings, TickOutcome
from tests.integration.mqtt.conftest import ack, retained, send
from tests.support.mosquitto import Mosquitto
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
TOL1 = "linefleet/v1/toledo/toledo-edge-1"


def test_broker_restart_and_wiped_retained_state(
    fleet_repo: Path, tmp_path: Path, mosquitto: Mosquitto, key: SigningKey
) -> None:
    settings = Settings(
        fleet_repo,
        BrokerAddress.parse(mosquitto.url),
        key,
        tmp_path / "state",
        "file:///x",
        remote=None,
        interval=0.2,
    )
    rec = Reconciler.open(settings)
    stop = threading.Event()
    outcomes: list[TickOutcome] = []
    thread = threading.Thread(target=rec.run, args=(stop, outcomes.append), daemon=True)
    thread.start()
    try:
        wait_for(
            "the first publish",
            lambda: f"{TOL1}/desired" in retained(mosquitto, f"{TOL1}/desired", 0.2),
        )
        desired = retained(mosquitto, f"{TOL1}/desired")[f"{TOL1}/desired"]

        mosquitto.kill()  # a crash: the loop reports and retries, it does not die
        wait_for("an error tick", lambda: any(o.error for o in outcomes[-3:]))
        (tmp_path / "mosquitto" / "data" / "mosquitto.db").unlink(missing_ok=True)
        mosquitto.start()  # comes back empty: the next tick publishes everything again
        wait_for(
            "a publish after the broker restart",
            lambda: f"{TOL1}/desired" in retained(mosquitto, f"{TOL1}/desired", 0.2),
        )
        assert retained(mosquitto, f"{TOL1}/desired")[f"{TOL1}/desired"] == desired

        send(mosquitto, [(f"{TOL1}/reported", ack(desired), False)])
        wait_for(
            "a report after the restart", lambda: "toledo/toledo-edge-1" in rec.observations.devices
        )
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert outcomes[-1].error == ""
    assert time.time() - (rec.observations.devices["toledo/toledo-edge-1"].last_seen or 0) < 60
