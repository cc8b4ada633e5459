"""What linefleet needs of an MQTT broker, asked of each engine (docs/protocol.md, 'Brokers').

Plain paho clients speak to Mosquitto, a three-node NATS cluster and RabbitMQ's MQTT plugin:
QoS 1 redelivery to a persistent session, wills, the largest message of the protocol, and
retained messages through exact and wildcard subscriptions. Then linefleet itself: `publish`
twice and `status` work on all three; on RabbitMQ, which hands retained messages only to
exact-topic subscriptions, linefleet reads each known device's topics exactly, and status says
so (tests/integration/brokers/test_rabbitmq_exact.py goes further).
"""

from __future__ import annotations

import json
import queue
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from linefleet.cli import main
from linefleet_core.mqttsession import RetainedUnsupported, retained_snapshot
from linefleet_core.mqtturl import BrokerAddress
from linefleet_core.signing import SigningKey
from linefleet_core.wire import MAX_FRAME_BYTES
from tests.support import minifleet
from tests.support.brokers import ENGINES, Broker, url_via
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


class Client:
    """A paho client on its own network thread; messages land on `inbox`."""

    def __init__(self, url: str, client_id: str, *, clean: bool = True, will: str = "") -> None:
        address = BrokerAddress.parse(url)
        self.inbox: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean,
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        if will:
            self.client.will_set(will, b"gone", qos=1, retain=False)
        self.client.on_message = lambda _c, _u, msg: self.inbox.put(msg)
        self.client.connect(address.host, address.port, keepalive=5)
        self.client.loop_start()

    def subscribe(self, topic_filter: str) -> None:
        acked: list[int] = []
        self.client.on_subscribe = lambda _c, _u, m, _r, _p: acked.append(m)
        _, mid = self.client.subscribe(topic_filter, qos=1)
        wait_for(f"a SUBACK for {topic_filter}", lambda: mid in acked, timeout=10, interval=0.01)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(15)

    def next(self, timeout: float = 10.0) -> mqtt.MQTTMessage | None:
        try:
            return self.inbox.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def crash(self) -> None:
        """Drop the TCP connection without DISCONNECT: the broker sends the will."""
        sock: Any = self.client.socket()
        sock.close()
        self.client.loop_stop()


def root() -> str:
    return f"lftest/{uuid.uuid4().hex[:10]}"


@pytest.mark.parametrize("broker", ENGINES, indirect=True)
def test_qos1_to_a_persistent_session_survives_its_absence(broker: Broker) -> None:
    base, sid = root(), f"lf-sess-{uuid.uuid4().hex[:8]}"
    device = Client(url_via(broker, 1), sid, clean=False)
    device.subscribe(f"{base}/desired")
    device.close()
    sender = Client(broker.url, f"lf-pub-{uuid.uuid4().hex[:8]}")
    sender.publish(f"{base}/desired", b"while you were away")  # PUBACKed: the broker holds it
    sender.close()
    back = Client(url_via(broker, 2), sid, clean=False)  # on a cluster: yet another node
    try:
        msg = back.next()
        assert msg is not None and msg.payload == b"while you were away"
    finally:
        back.close()


@pytest.mark.parametrize("broker", ENGINES, indirect=True)
def test_a_crashed_client_s_will_is_delivered(broker: Broker) -> None:
    base = root()
    watcher = Client(url_via(broker, 1), f"lf-watch-{uuid.uuid4().hex[:8]}")
    watcher.subscribe(f"{base}/+/online")
    device = Client(broker.url, f"lf-dev-{uuid.uuid4().hex[:8]}", will=f"{base}/d1/online")
    time.sleep(0.2)
    device.crash()
    try:
        msg = watcher.next(20)
        assert msg is not None and (msg.topic, msg.payload) == (f"{base}/d1/online", b"gone")
    finally:
        watcher.close()


@pytest.mark.parametrize("broker", ENGINES, indirect=True)
def test_the_largest_protocol_message_passes(broker: Broker) -> None:
    base = root()
    reader = Client(url_via(broker, 1), f"lf-read-{uuid.uuid4().hex[:8]}")
    reader.subscribe(f"{base}/frames")
    sender = Client(broker.url, f"lf-big-{uuid.uuid4().hex[:8]}")
    frame = bytes(range(256)) * (MAX_FRAME_BYTES // 256)
    try:
        sender.publish(f"{base}/frames", frame)
        msg = reader.next(20)
        assert msg is not None and msg.payload == frame
    finally:
        sender.close()
        reader.close()


def retained_via(broker: Broker, topic_filter: str) -> bytes | None:
    reader = Client(url_via(broker, 1), f"lf-ret-{uuid.uuid4().hex[:8]}")
    try:
        reader.subscribe(topic_filter)
        msg = reader.next(1.5)
        return None if msg is None or not msg.retain else bytes(msg.payload)
    finally:
        reader.close()


@pytest.mark.parametrize("broker", ENGINES, indirect=True)
def test_retained_messages_for_exact_and_wildcard_subscriptions(broker: Broker) -> None:
    base = root()
    sender = Client(broker.url, f"lf-ret-{uuid.uuid4().hex[:8]}")
    sender.publish(f"{base}/d1/desired", b"document", retain=True)
    sender.close()
    time.sleep(0.3)  # a cluster spreads the retained store to every node
    assert retained_via(broker, f"{base}/d1/desired") == b"document"
    wildcard = retained_via(broker, f"{base}/+/desired")
    if broker.name == "rabbitmq-server":
        assert wildcard is None  # RabbitMQ 3.x: retained only for the exact topic
        with pytest.raises(RetainedUnsupported, match=f"broker {broker.url} does not deliver"):
            retained_snapshot(BrokerAddress.parse(broker.url), f"{base}/+/desired", "lf-snap")
    else:
        assert wildcard == b"document"
        snap = retained_snapshot(BrokerAddress.parse(broker.url), f"{base}/+/desired", "lf-snap")
        assert {t: m.payload for t, m in snap.items()} == {f"{base}/d1/desired": b"document"}


@pytest.mark.parametrize("broker", ENGINES, indirect=True)
def test_publish_twice_and_status_on_every_engine(
    broker: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "fleet"
    minifleet.write_minifleet(repo)
    minifleet.init_repo(repo)
    minifleet.commit_all(repo, "initial fleet")
    key, _ = SigningKey.generate().write(tmp_path / "keys")
    args = ["publish", "--broker", broker.url, "--repo", str(repo), "--signing-key", str(key)]
    assert main([*args, "--format", "json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["published"] == 3
    assert main([*args, "--format", "json"]) == 0  # from what the broker retained: no change
    again = json.loads(capsys.readouterr().out)
    assert (again["published"], again["unchanged"]) == (0, 3)
    assert main([*args, "--format", "json", "--full"]) == 0  # every device read back
    full = json.loads(capsys.readouterr().out)
    assert (full["mode"], full["published"], full["unchanged"]) == ("full", 0, 3)
    assert main(["status", "--broker", broker.url, "--repo", str(repo), "--format", "json"]) == 0
    status = json.loads(capsys.readouterr().out)
    ours = {
        d["device"]
        for d in status["devices"]
        if (d["desired"] or {}).get("commit") == first["commit"]
    }
    assert ours == {"toledo-edge-1", "toledo-edge-2", "dresden-edge-1"}
    exact = broker.name == "rabbitmq-server"  # retained only for exact-topic subscriptions
    assert any("read by exact topic" in n for n in status.get("notes", [])) == exact
