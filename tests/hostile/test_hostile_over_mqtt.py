"""The hostile corpus through a real Mosquitto, to the real receivers.

Device: `linefleet edge run`'s loop (`edge_puller.runner.run`, in a thread) holds a valid
generation; every hostile desired document is published retained on its topic; each must
come back as a `refused-document` event with the corpus's reason, in order, while the device
keeps serving what it held. Reconciler: the hostile device messages go through the broker to
a `linefleet_core.mqttsession.Session` and `Observations.ingest` (what `linefleet reconcile` runs); all
are counted by reason, none recorded as device state, and a good report sent last still lands.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_puller.runner import RunOptions, run
from linefleet_core.mqttsession import Session
from linefleet_core.mqtturl import BrokerAddress
from reconciler.service.observed import Observations
from tests.hostile import wire_corpus as wc
from tests.support.mosquitto import Mosquitto
from tests.support.onnx_models import write_model
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
ROOT = f"linefleet/v1/{wc.SITE}/{wc.DEVICE}"
# Deeply nested documents get a longer wait: the edge refuses them after parsing them once.
NESTED = {"deeply-nested", "deeply-nested-within-size"}


class Watcher:
    def __init__(self, broker: Mosquitto) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hostile-watcher")
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(f"{ROOT}/+", qos=1)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        with self.lock:
            self.got.append((msg.topic.rsplit("/", 1)[1], bytes(msg.payload)))

    def bodies(self, channel: str) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(p) for ch, p in self.got if ch == channel and p]

    def publish(self, topic: str, payload: bytes, retain: bool = True) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker") as running:
        yield running


def _edge_refuses(
    tmp_path: Path, broker: Mosquitto, cases: list[wc.DesiredCase], timeout: float = 20.0
) -> None:
    built = write_model(tmp_path / "m.onnx")
    held = wc.document(wc.HELD, url=built.url, sha=built.sha256, size=built.size)
    stop = threading.Event()
    options = RunOptions(
        site=wc.SITE,
        device=wc.DEVICE,
        broker=BrokerAddress.parse(broker.url),
        state_dir=tmp_path / "state",
        frames=str(tmp_path / "no-frames"),
        trusted_keys={wc.KEY.key_id: wc.KEY.public},
        results=tmp_path / "results.jsonl",
        artifact_roots=(tmp_path,),  # where `m.onnx` lives
    )
    (tmp_path / "no-frames").mkdir()
    device = threading.Thread(target=run, args=(options, stop), daemon=True)
    watcher = Watcher(broker)
    try:
        device.start()
        watcher.publish(f"{ROOT}/desired", wc.signed(held))

        def applied() -> int | None:
            reports = watcher.bodies("reported")
            return (reports[-1].get("applied") or {}).get("generation") if reports else None

        wait_for("generation 5 applied", lambda: applied() == wc.HELD)
        for case in cases:
            watcher.publish(f"{ROOT}/desired", case.payload)

        def refusals() -> list[str]:
            events = watcher.bodies("events")
            return [e["reason"] for e in events if e["type"] == "refused-document"]

        try:
            wait_for("every refusal", lambda: len(refusals()) >= len(cases), timeout)
        except AssertionError:
            raise AssertionError(
                f"got {refusals()}, expected {[c.reason for c in cases]}"
            ) from None
        assert refusals() == [c.reason.value for c in cases]
        messages = [e["message"] for e in watcher.bodies("events") if e["reason"] != "activation"]
        assert all(m.startswith("refused desired state (") for m in messages[1:])
        watcher.publish(f"{ROOT}/desired", wc.signed(held))  # the reconciler republishes
        time.sleep(0.5)
        assert applied() == wc.HELD
        assert not [e for e in watcher.bodies("events") if e["type"] == "fallback"]
    finally:
        stop.set()
        device.join(15)
        watcher.close()
    assert not device.is_alive()


def test_the_edge_refuses_every_hostile_document_and_keeps_serving(
    tmp_path: Path, broker: Mosquitto
) -> None:
    cases = [c for c in wc.DESIRED_CASES if not c.known_bug and c.name not in NESTED]
    _edge_refuses(tmp_path, broker, cases)


def test_the_edge_reports_refusing_a_deeply_nested_document(
    tmp_path: Path, broker: Mosquitto
) -> None:
    nested = [c for c in wc.DESIRED_CASES if c.name in NESTED]
    _edge_refuses(tmp_path, broker, nested, timeout=6.0)


def test_the_reconciler_counts_and_drops_every_hostile_device_message(broker: Mosquitto) -> None:
    session = Session(
        BrokerAddress.parse(broker.url),
        "linefleet-reconciler-hostile",
        subscriptions=[f"linefleet/v1/+/+/{c}" for c in ("reported", "events", "online")],
    )
    cases = [c for c in wc.DEVICE_CASES if not c.known_bug]
    sendable = [c for c in cases if "+" not in c.topic and "/../" not in c.topic]
    good = json.dumps(wc.reported()).encode()
    with session.connect():
        watcher = Watcher(broker)
        try:
            for case in sendable:
                watcher.publish(case.topic, case.payload, retain=False)
            watcher.publish(wc.REPORTED, good, retain=False)
        finally:
            watcher.close()
        messages = session.drain(quiet=1.0, limit=20.0)
    obs = Observations()
    for msg in messages:
        obs.ingest(msg.topic, msg.payload, msg.received, wc.KNOWN_DEVICES)
    subscribed = [c for c in sendable if c.topic.split("/")[-1] in ("reported", "events", "online")]
    subscribed = [c for c in subscribed if c.topic.startswith("linefleet/v1/")]
    assert obs.rejections == Counter(c.rejection for c in subscribed)
    assert list(obs.devices) == [f"{wc.SITE}/{wc.DEVICE}"]
    last = obs.devices[f"{wc.SITE}/{wc.DEVICE}"].reported
    assert last is not None and last.device == wc.DEVICE  # the good report after the storm
