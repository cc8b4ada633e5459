"""`linefleet status` reads the fleet's retained state through a QoS 0 subscription (no PUBACK
per message: 30,000 of them at 10,000 devices). The barrier that ends the read must still
come after every retained message, on each engine linefleet supports; on RabbitMQ, which hands
retained messages only to exact-topic subscriptions, a wildcard read is refused and a read
given the exact topics gets them all."""

from __future__ import annotations

import time
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from linefleet_core.mqttsession import RetainedUnsupported, retained_snapshot
from linefleet_core.mqtturl import BrokerAddress
from tests.support.brokers import ENGINES, Broker

pytestmark = pytest.mark.integration
COUNT = 2000


def fill(url: str, base: str) -> dict[str, bytes]:
    """COUNT retained messages under `base`, every PUBACK received."""
    address = BrokerAddress.parse(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"lf-fill-{uuid.uuid4().hex[:8]}")
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    client.connect(address.host, address.port)
    client.loop_start()
    sent = {f"{base}/d{n}/desired": f'{{"n": {n}}}'.encode() for n in range(COUNT)}
    try:
        infos = [client.publish(topic, body, qos=1, retain=True) for topic, body in sent.items()]
        for info in infos:
            info.wait_for_publish(30)
    finally:
        client.disconnect()
        client.loop_stop()
    return sent


@pytest.mark.parametrize("broker", ENGINES, indirect=True)
def test_a_qos0_snapshot_holds_every_retained_message(broker: Broker) -> None:
    base = f"lftest/{uuid.uuid4().hex[:10]}"
    sent = fill(broker.url, base)
    address = BrokerAddress.parse(broker.url)
    if broker.name == "rabbitmq-server":
        with pytest.raises(RetainedUnsupported, match="does not deliver retained"):
            retained_snapshot(address, f"{base}/+/desired", "lf-snap0", qos=0)
        # given the exact topics (2,000 filters: four SUBSCRIBE packets), every one is read
        snap = retained_snapshot(
            address, f"{base}/+/desired", "lf-snap0-x", qos=0, expand=lambda _found: list(sent)
        )
        assert {t: m.payload for t, m in snap.items()} == sent and snap.exact
        return
    time.sleep(0.3)  # a cluster spreads the retained store to every node
    for attempt in range(3):
        snap = retained_snapshot(address, f"{base}/+/desired", f"lf-snap0-{attempt}", qos=0)
        assert {t: m.payload for t, m in snap.items()} == sent
        assert all(m.retain for m in snap.values())
