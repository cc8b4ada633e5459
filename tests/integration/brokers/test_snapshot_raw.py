"""`linefleet status` reads the retained state without paho (`reconciler.service.mqttread`).

On each engine it must return exactly what paho's `retained_snapshot(..., qos=0)` returns: the
same topics, payloads byte for byte (empty to several MiB, so packets span reads and Remaining
Length takes 1-4 bytes), retained messages only, wildcards and exact topics; it refuses a broker
that does not hand retained messages to wildcards (RabbitMQ) as paho's reading does; refused
credentials are permanent, an unreachable broker and one that speaks no MQTT are temporary
(exit 4), each naming the broker.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from linefleet_core.errors import PermanentError, TemporaryError
from linefleet_core.loopback import free_port
from linefleet_core.mqttsession import Message, RetainedUnsupported, retained_snapshot
from linefleet_core.mqtturl import BrokerAddress
from reconciler.service.mqttread import read_retained
from tests.support.brokers import ENGINES, Broker
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.integration
COUNT = 1500
SIZES = (0, 1, 126, 127, 128, 16_383, 16_384, 70_000, 2_200_000)
"""Payload sizes around the Remaining Length's 1/2/3/4-byte boundaries and a read's size."""


def send(url: str, messages: dict[str, tuple[bytes, bool]]) -> None:
    """Publish (topic -> payload, retain) at QoS 1 and wait for every PUBACK."""
    address = BrokerAddress.parse(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"lf-fill-{uuid.uuid4().hex[:8]}")
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    if address.username:
        client.username_pw_set(address.username, address.password)
    client.connect(address.host, address.port)
    client.loop_start()
    try:
        infos = [client.publish(t, p, qos=1, retain=r) for t, (p, r) in messages.items()]
        for info in infos:
            info.wait_for_publish(60)
    finally:
        client.disconnect()
        client.loop_stop()


def fleet_like(base: str) -> dict[str, tuple[bytes, bool]]:
    """COUNT retained documents of varied sizes, a few non-retained messages, odd topics."""
    out: dict[str, tuple[bytes, bool]] = {}
    for n in range(COUNT):
        body = (f'{{"n": {n}, "pad": "' + "x" * (n * 37 % 3000) + '"}').encode()
        out[f"{base}/s{n % 7}/d{n}/desired"] = (body, True)
        out[f"{base}/s{n % 7}/d{n}/reported"] = (body[::-1], True)
    for n, size in enumerate(SIZES[1:]):  # an empty retained payload would clear the topic
        out[f"{base}/big/b{n}/desired"] = (
            bytes(range(256)) * (size // 256) + b"z" * (size % 256),
            True,
        )
    out[f"{base}/s0/live/desired"] = (b"not retained", False)
    out[f"{base}/s0/caf\u00e9-\u6f22/desired"] = (b"unicode topic", True)
    return out


@pytest.mark.parametrize("broker", ENGINES, indirect=True)
def test_the_raw_reading_equals_paho_s(broker: Broker) -> None:
    base = f"lftest/{uuid.uuid4().hex[:10]}"
    sent = fleet_like(base)
    send(broker.url, sent)
    address = BrokerAddress.parse(broker.url)
    filters = [f"{base}/+/+/desired", f"{base}/+/+/reported"]
    if broker.name == "rabbitmq-server":
        with pytest.raises(RetainedUnsupported, match="does not deliver retained"):
            read_retained(address, filters, "lf-raw-rmq")
        return
    time.sleep(0.3)  # a cluster spreads the retained store to every node
    expected = {t: p for t, (p, retain) in sent.items() if retain}
    paho = retained_snapshot(address, filters, "lf-paho-0", qos=0)
    assert {t: m.payload for t, m in paho.items()} == expected  # the reference reads it all
    for attempt in range(2):
        seen: list[Message] = []  # `each`: every retained message as it is read
        raw = read_retained(address, filters, f"lf-raw-{attempt}", each=seen.append)
        assert {t: m.payload for t, m in raw.items()} == expected
        assert sorted(m.topic for m in seen) == sorted(expected)
        assert all(raw[m.topic] is m for m in seen)
        assert all(m.retain and isinstance(m.payload, bytes) for m in raw.values())
        assert {t: (m.topic, m.retain) for t, m in raw.items()} == {
            t: (m.topic, m.retain) for t, m in paho.items()
        }
    exact = [f"{base}/s3/d3/desired", f"{base}/big/b7/desired", f"{base}/nobody/x/desired"]
    raw = read_retained(address, exact, "lf-raw-exact")
    assert {t: m.payload for t, m in raw.items()} == {t: expected[t] for t in exact[:2]}


@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
def test_a_fleet_s_status_reading_is_the_same(broker: Broker) -> None:
    """The three filters status reads, on a broker with other clients' barrier topics and
    retained messages beside the fleet's."""
    from reconciler.service.statusread import read_snapshot

    sent = {
        f"linefleet/v1/site-{n % 3}/dev-{n}/{channel}": (f"{channel}-{n}".encode(), True)
        for n in range(300)
        for channel in ("desired", "reported", "online", "events")
    }
    sent["linefleet/v1/_barrier/someone"] = (b"", False)
    sent["linefleet/v1/_barrier/kept"] = (b"retained, not ours", True)
    sent["linefleet/v1/_reconciler/published"] = (b"{}", True)
    send(broker.url, sent)
    address = BrokerAddress.parse(broker.url)
    filters = [f"linefleet/v1/+/+/{c}" for c in ("desired", "reported", "online")]
    paho = retained_snapshot(address, filters, "lf-status-paho", qos=0)
    raw = read_snapshot(address)
    assert {t: m.payload for t, m in raw.items()} == {t: m.payload for t, m in paho.items()}
    assert len(raw) == 900


def test_refused_credentials_are_permanent(tmp_path: Path) -> None:
    passwords = tmp_path / "passwd"
    passwords.write_text("")
    with Mosquitto(tmp_path / "b", allow_anonymous=False, password_file=passwords) as broker:
        address = BrokerAddress.parse(f"mqtt://nobody:wrong@{broker.host}:{broker.port}")
        with pytest.raises(PermanentError, match=r"refused the connection: Not authorized"):
            read_retained(address, "linefleet/v1/+/+/desired", "lf-raw-refused")


def test_an_unreachable_broker_is_temporary() -> None:
    port = free_port()
    address = BrokerAddress.parse(f"mqtt://127.0.0.1:{port}")
    with pytest.raises(TemporaryError, match=rf"broker mqtt://127.0.0.1:{port} unreachable"):
        read_retained(address, "a/#", "lf-raw-nobody")


class Impostor:
    """A loopback server that answers each connection with fixed bytes (then waits or
    hangs up): a broker that speaks no MQTT, or speaks it wrongly."""

    def __init__(self, reply: bytes, *, hang_up: bool) -> None:
        self.reply, self.hang_up = reply, hang_up
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(self.reply)
            if not self.hang_up:
                time.sleep(3)

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def impostor(request: pytest.FixtureRequest) -> Iterator[Impostor]:
    reply, hang_up = request.param
    server = Impostor(reply, hang_up=hang_up)
    yield server
    server.close()


@pytest.mark.parametrize(
    ("impostor", "message"),
    [
        ((b"HTTP/1.1 400 Bad Request\r\n\r\n", True), "closed the connection"),
        ((b"", False), "no CONNACK within 1s"),
        ((b"\x20\x02\x00\x00\x30\xff\xff\xff\xff\x7f", False), "malformed packet length"),
        ((b"\x20\x02\x00\x00\x90\x03\x00\x01\x80", False), r"refused the subscription to a/# "),
    ],
    indirect=["impostor"],
)
def test_a_broker_that_speaks_no_mqtt_is_a_located_temporary_error(
    impostor: Impostor, message: str
) -> None:
    address = BrokerAddress.parse(f"mqtt://127.0.0.1:{impostor.port}")
    with pytest.raises(TemporaryError, match=message) as caught:
        read_retained(address, "a/#", "lf-raw-impostor", timeout=1.0, limit=2.0)
    assert f"127.0.0.1:{impostor.port}" in str(caught.value)
