"""The trainer's drift read (`trainer.mqtt_listen.read_drift`) on every engine linefleet runs on.

On Mosquitto and the NATS cluster the devices' retained reports come through the wildcard; on
RabbitMQ (which hands retained messages only to exact-topic subscriptions) and on Mosquitto
told `?retained=exact`, the fleet's devices are read by exact topic, so a device outside the
fleet is not seen, and a read that names no device is refused rather than silently empty.
"""

from __future__ import annotations

import json
import uuid

import pytest

from linefleet_core import wire
from linefleet_core.mqttsession import RetainedUnsupported
from tests.integration.mqtt.conftest import send
from tests.support.brokers import Broker
from trainer.mqtt_listen import read_drift

pytestmark = pytest.mark.integration


def report(site: str, device: str, line: str, score: float) -> tuple[str, bytes, bool]:
    doc = {
        "protocol": 1,
        "kind": "ReportedState",
        "site": site,
        "device": device,
        "at": "2026-11-22T00:00:00Z",
        "lines": [
            {
                "line": line,
                "phase": "serving",
                "metrics": {"window_seconds": 300.0, "frames": 3000, "drift_score": score},
            }
        ],
    }
    return wire.topic(site, device, wire.Channel.REPORTED), json.dumps(doc).encode(), True


WAYS = [
    ("mosquitto", ""),
    ("mosquitto", "?retained=exact"),  # told to read by exact topic
    ("nats-cluster", ""),
    ("rabbitmq", ""),  # finds out by itself that wildcards get no retained messages
]


@pytest.mark.parametrize(("broker", "query"), WAYS, indirect=["broker"])
def test_drift_is_read_from_the_fleets_devices_on_every_engine(broker: Broker, query: str) -> None:
    site = f"drift{uuid.uuid4().hex[:8]}"  # shared NATS/RabbitMQ: topics of this test alone
    send(
        broker,
        [
            report(site, "edge-1", f"{site}/line-1", 0.9),
            report(site, "edge-2", f"{site}/line-2", 0.1),
            report(site, "stranger", f"{site}/line-3", 0.7),  # not in the fleet
        ],
    )
    url = broker.url + query
    fleet = [(site, "edge-1"), (site, "edge-2")]

    drift = {k: v for k, v in read_drift(url, fleet).items() if k.startswith(site)}

    ours = {f"{site}/line-1": 0.9, f"{site}/line-2": 0.1}
    if query or broker.name == "rabbitmq-server":  # by exact topic: the fleet's devices only
        assert drift == ours
        with pytest.raises(RetainedUnsupported, match="exact topic"):
            read_drift(url)
    else:
        assert drift == {**ours, f"{site}/line-3": 0.7}
