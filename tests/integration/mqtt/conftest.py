"""Fixtures for the MQTT integration tests: a real Mosquitto, a real git fleet, a key."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from linefleet_core.signing import SigningKey
from tests.support import minifleet
from tests.support.brokers import Broker
from tests.support.mosquitto import Mosquitto, mosquitto
from tests.support.waiting import until

__all__ = ["mosquitto"]


@pytest.fixture
def fleet_repo(tmp_path: Path) -> Path:
    root = tmp_path / "fleet-repo"
    minifleet.write_minifleet(root)
    minifleet.init_repo(root)
    minifleet.commit_all(root, "initial fleet")
    return root


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


def retained(broker: Mosquitto, topic_filter: str, quiet: float = 0.4) -> dict[str, bytes]:
    """What a fresh subscriber receives as retained messages (an independent paho client)."""
    got: dict[str, bytes] = {}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:8]}")
    last = [time.monotonic()]

    def on_message(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        if msg.retain:
            got[msg.topic] = bytes(msg.payload)
        last[0] = time.monotonic()

    client.on_message = on_message
    client.connect(broker.host, broker.port)
    client.subscribe(topic_filter, qos=1)
    client.loop_start()
    try:
        time.sleep(quiet)
        until(
            lambda: time.monotonic() - last[0] >= quiet, interval=0.05
        )  # nothing new for `quiet` s
    finally:
        client.disconnect()
        client.loop_stop()
    return got


def send(broker: Broker, messages: list[tuple[str, bytes, bool]], client_id: str = "") -> None:
    """Publish (topic, payload, retain) at QoS 1 and wait for every PUBACK."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or uuid.uuid4().hex)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        infos = [client.publish(t, p, qos=1, retain=r) for t, p, r in messages]
        for info in infos:
            info.wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def ack(desired: bytes, /, *, at: float | None = None, **changes: object) -> bytes:
    """The reported state of a device that converged to `desired` (a simulated device)."""
    import datetime as dt
    import json

    doc = json.loads(desired)
    applied = {"generation": doc["generation"], "content_hash": doc["content_hash"]}
    moment = dt.datetime.now(dt.UTC) if at is None else dt.datetime.fromtimestamp(at, dt.UTC)
    body: dict[str, object] = {
        "protocol": 1,
        "kind": "ReportedState",
        "site": doc["site"],
        "device": doc["device"],
        "at": moment.isoformat(),
        "desired": applied,
        "applied": applied,
        "lines": [
            {"line": ln["line"], "phase": "serving", "serving": ln["serving"]["ref"]}
            for ln in doc["spec"]["lines"]
        ],
    }
    body.update(changes)
    return json.dumps(body).encode()


EVENT_TOPIC = "linefleet/v1/toledo/toledo-edge-1/events"
ACTIVATION = json.dumps(
    {
        "protocol": 1,
        "kind": "Event",
        "site": "toledo",
        "device": "toledo-edge-1",
        "at": "2026-11-21T10:00:00Z",
        "type": "activation",
        "seq": 1,
    }
).encode()
"""A live event of toledo-edge-1 (sequence 1), for the reconciler's device session."""


def activation_recorded(state_dir: Path) -> bool:
    """The reconciler's store (in `state_dir`) has recorded `ACTIVATION`."""
    db = state_dir / "reconciler.sqlite3"
    if not db.is_file():
        return False
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT last_seq FROM device WHERE device='toledo-edge-1'")
        return bool(row.fetchone() == (1,))
