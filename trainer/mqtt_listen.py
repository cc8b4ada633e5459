"""Listen to the edge's events and frames on a broker for a while (paho-mqtt 2).

A persistent session with a stable client id (`linefleet-trainer-ingest`), so QoS 1 events
sent while the trainer was away are delivered on the next run. A clustered broker
(`mqtt://A:P,B:P,C:P`) is used as the other clients use it (`linefleet_core.mqtturl`): the
first node that answers, and the next one in the list when that node goes away (the
subscriptions are made again on every connection).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from linefleet_core import wire
from linefleet_core.errors import TemporaryError
from linefleet_core.mqtturl import BrokerAddress

CLIENT_ID = "linefleet-trainer-ingest"


def _connect(client: Any, url: str) -> str:
    """Connect `client` to the first node of the broker at `url` that answers (credentials and
    TLS as every client of ours); when that node goes away, paho's loop reconnects to the
    next one (`BrokerAddress.fail_over`)."""
    address = BrokerAddress.parse(url)
    address.configure(client)
    failures = []
    for host, port in address.endpoints:
        try:
            client.connect(host, port, keepalive=30)
            break
        except (OSError, ValueError) as exc:
            failures.append(f"{host}:{port}: {exc}" if address.others else str(exc))
    else:
        raise TemporaryError(f"broker {address.url} unreachable: {'; '.join(failures)}")

    def fail_over(client: Any, *_: object) -> None:
        address.fail_over(client)

    client.on_disconnect = fail_over
    client.on_connect_fail = fail_over
    return address.url


def listen(url: str, seconds: float) -> tuple[list[bytes], list[bytes]]:
    """(event payloads, frame payloads) received within `seconds` after subscribing."""
    events, frames, _, _ = listen_named(url, seconds)
    return events, frames


def listen_named(url: str, seconds: float) -> tuple[list[bytes], list[bytes], list[str], list[str]]:
    """As `listen`, with the topic of each event and frame payload (in the same order), so a
    refused one names the device that sent it."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    events: list[bytes] = []
    frames: list[bytes] = []
    event_topics: list[str] = []
    frame_topics: list[str] = []
    subscribed = threading.Event()
    lock = threading.Lock()

    def on_connect(client: mqtt.Client, _u: object, _f: object, rc: object, _p: object) -> None:
        client.subscribe(
            [
                (wire.topic_filter(wire.Channel.EVENTS), 1),
                (wire.topic_filter(wire.Channel.FRAMES), 1),
            ]
        )

    def on_subscribe(*_: object) -> None:
        subscribed.set()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        topic = wire.parse_topic(msg.topic)
        if topic is None:
            return
        with lock:
            if topic.channel == wire.Channel.EVENTS:
                events.append(bytes(msg.payload))
                event_topics.append(msg.topic)
            elif topic.channel == wire.Channel.FRAMES:
                frames.append(bytes(msg.payload))
                frame_topics.append(msg.topic)

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=CLIENT_ID,
        clean_session=False,
        protocol=mqtt.MQTTv311,
    )
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    where = _connect(client, url)
    client.loop_start()
    try:
        if not subscribed.wait(10):
            raise TemporaryError(f"broker {where}: no SUBACK within 10 s")
        time.sleep(seconds)
    finally:
        client.disconnect()
        client.loop_stop()
    with lock:
        return list(events), list(frames), list(event_topics), list(frame_topics)


def read_drift(
    url: str, devices: Iterable[tuple[str, str]] = (), quiet: float = 0.5
) -> dict[str, float]:
    """The newest drift score per line, from the devices' retained reported states.

    Read as every reader of retained state reads it (`linefleet_core.mqttsession`): through
    the wildcard, and, on a broker that hands retained messages only to exact-topic
    subscriptions (RabbitMQ's MQTT plugin, or `?retained=exact` on the URL), by the exact
    topics of `devices` (site, device): the fleet's. A device outside them is not seen there;
    with no `devices` such a broker is refused (`RetainedUnsupported`, exit 1)."""
    import json
    import uuid

    from linefleet_core.mqttsession import retained_snapshot

    exact = [wire.topic(site, device, wire.Channel.REPORTED) for site, device in sorted(devices)]
    snapshot = retained_snapshot(
        BrokerAddress.parse(url),
        wire.topic_filter(wire.Channel.REPORTED),
        f"{CLIENT_ID}-drift-{uuid.uuid4().hex[:8]}",
        quiet=quiet,
        qos=0,
        expand=(lambda _found: exact) if exact else None,
    )
    drift: dict[str, float] = {}
    for msg in snapshot.values():
        try:
            state = wire.ReportedState.model_validate(json.loads(msg.payload))
        except ValueError:
            continue  # not ours to judge here; the reconciler reports bad documents
        for line in state.lines:
            if line.metrics is not None:
                drift[line.line] = max(drift.get(line.line, 0.0), line.metrics.drift_score)
    return drift
