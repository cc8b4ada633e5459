"""Fixtures for the MQTT integration tests: a real Mosquitto, a real git fleet, a key."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from linefleet_core.signing import SigningKey
from tests.support import minifleet
from tests.support.mosquitto import Mosquitto, mosquitto

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
        while time.monotonic() - last[0] < quiet:
            time.sleep(0.05)
    finally:
        client.disconnect()
        client.loop_stop()
    return got
