"""The edge agent against a real Mosquitto: converge, survive outages, deliver in order, roll back."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_puller.runner import RunOptions, run
from edge_puller.target import ModelSpec
from linefleet_core.mqtturl import BrokerAddress
from linefleet_core.signing import SigningKey
from linefleet_core.wire import decode_frame
from tests.support.mosquitto import Mosquitto
from tests.unit.edge.documents import desired, line_doc
from tests.unit.edge.helpers import spec_for

pytestmark = pytest.mark.integration

KEY = SigningKey.generate()
ROOT = "linefleet/v1/plant/dev-1"


class Watcher:
    """A persistent-session subscriber that records everything the device publishes."""

    def __init__(self, broker: Mosquitto) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="watcher", clean_session=False
        )
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe(f"{ROOT}/+", qos=1)
        self.client.reconnect_delay_set(1, 2)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        with self.lock:
            self.messages.append((msg.topic.rsplit("/", 1)[1], bytes(msg.payload), msg.retain))

    def bodies(self, channel: str) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(p) for ch, p, _ in self.messages if ch == channel and p]

    def frames(self) -> list[bytes]:
        with self.lock:
            return [p for ch, p, _ in self.messages if ch == "frames"]

    def publish_desired(self, payload: bytes) -> None:
        self.client.publish(f"{ROOT}/desired", payload, qos=1, retain=True).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def wait_for(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Device:
    """`edge run` in a thread (as the CLI runs it), with a frames directory and results file."""

    def __init__(self, tmp: Path, broker: Mosquitto) -> None:
        self.frames = tmp / "frames"
        self.frames.mkdir(exist_ok=True)
        self.results = tmp / "results.jsonl"
        self.stop = threading.Event()
        self.count = 0
        options = RunOptions(
            site="plant",
            device="dev-1",
            broker=BrokerAddress.parse(broker.url),
            state_dir=tmp / "state",
            frames=str(self.frames),
            trusted_keys={KEY.key_id: KEY.public},
            results=self.results,
            artifact_roots=(tmp / "src",),  # where the `models` fixture writes
        )
        self.thread = threading.Thread(target=run, args=(options, self.stop), daemon=True)
        self.thread.start()

    def show(self, brightness: int, n: int = 1) -> None:
        for _ in range(n):
            self.count += 1
            image = np.full((48, 64, 3), brightness, dtype=np.uint8)
            cv2.imwrite(str(self.frames / f"f{self.count:05d}.png"), image)

    def decisions(self) -> list[dict[str, Any]]:
        if not self.results.exists():
            return []
        return [json.loads(line) for line in self.results.read_text().split("\n")[:-1] if line]

    def decided_by(self, model: str) -> bool:
        """Show a bright frame now and then until the last decision is `model`'s."""
        found = self.decisions()
        if found and found[-1].get("model") == model:
            return True
        if len(found) == self.count:  # the last frame is decided: show another
            self.show(220)
        return False

    def close(self) -> None:
        self.stop.set()
        self.thread.join(15)


@pytest.fixture
def models(tmp_path: Path) -> dict[str, ModelSpec]:
    return {
        "m1": spec_for(tmp_path / "src", "inc", 1),
        "m2": spec_for(tmp_path / "src", "cand", 2, invert=True),
        "crashy": spec_for(tmp_path / "src", "crashy", 3, crash_above=0.7),
    }


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker") as running:
        yield running


@pytest.fixture
def watcher(broker: Mosquitto) -> Iterator[Watcher]:
    w = Watcher(broker)
    yield w
    w.close()


@pytest.fixture
def device(tmp_path: Path, broker: Mosquitto) -> Iterator[Device]:
    d = Device(tmp_path, broker)
    yield d
    d.close()


def test_converges_to_a_signed_desired_state_and_reports(
    models: dict[str, ModelSpec], watcher: Watcher, device: Device
) -> None:
    watcher.publish_desired(desired(KEY, 1, line_doc(models["m1"]), heartbeat_seconds=1))
    wait_for(
        "online birth",
        lambda: {"online": True} in [{"online": b["online"]} for b in watcher.bodies("online")],
    )
    wait_for(
        "applied report",
        lambda: any(
            (b.get("applied") or {}).get("generation") == 1 for b in watcher.bodies("reported")
        ),
    )
    wait_for("a decision by inc@1", lambda: device.decided_by("inc@1"))
    assert device.decisions()[-1]["label"] == "ok"
    events = watcher.bodies("events")
    assert [(e["type"], e["seq"]) for e in events] == [("activation", 1)]
    device.show(30)  # dark: a scratch, so the frame is spooled and uploaded
    wait_for("the defect frame uploaded", lambda: bool(watcher.frames()))
    meta, jpeg = decode_frame(watcher.frames()[0])
    assert (meta.reason, meta.predicted, meta.line, meta.model) == (
        "defect",
        "scratch",
        "plant/line-1",
        "inc@1",
    )
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    assert image.shape == (48, 64, 3)


def test_refused_document_is_reported_and_the_incumbent_keeps_serving(
    models: dict[str, ModelSpec], watcher: Watcher, device: Device
) -> None:
    watcher.publish_desired(desired(KEY, 1, line_doc(models["m1"])))
    wait_for("activation", lambda: bool(watcher.bodies("events")))
    watcher.publish_desired(desired(SigningKey.generate(), 2, line_doc(models["m2"])))
    wait_for(
        "refusal", lambda: any(e["type"] == "refused-document" for e in watcher.bodies("events"))
    )
    wait_for("a decision by inc@1", lambda: device.decided_by("inc@1"))


def test_keeps_serving_offline_and_delivers_events_in_order_after_reconnect(
    models: dict[str, ModelSpec], broker: Mosquitto, watcher: Watcher, device: Device
) -> None:
    doc = line_doc(models["m1"], candidate=models["crashy"], stage="shadow")
    watcher.publish_desired(desired(KEY, 1, doc, heartbeat_seconds=1))
    wait_for("activation", lambda: bool(watcher.bodies("events")))
    wait_for(
        "candidate in shadow",
        lambda: any(
            ln.get("candidate") == "crashy@3"
            for b in watcher.bodies("reported")
            for ln in b["lines"]
        ),
    )
    broker.stop()
    device.show(40, 3)
    wait_for("dark frames decided offline", lambda: len(device.decisions()) == 3)
    device.show(220)  # bright: the shadow candidate crashes; the device falls back alone
    wait_for("the bright frame decided", lambda: len(device.decisions()) == 4)
    assert [d["model"] for d in device.decisions()] == ["inc@1"] * 4
    time.sleep(1.5)  # heartbeats pile up in the outbox while offline
    broker.start()
    wait_for("fallback and re-activation delivered", lambda: len(watcher.bodies("events")) >= 3)
    events = watcher.bodies("events")
    assert [(e["seq"], e["type"]) for e in events] == [
        (1, "activation"),
        (2, "fallback"),
        (3, "activation"),
    ]
    assert events[1]["reason"] == "candidate-error"
    wait_for(
        "a report after reconnect showing the fallback",
        lambda: any(
            ln["phase"] == "rolled_back" for b in watcher.bodies("reported") for ln in b["lines"]
        ),
    )


def test_rollback_through_the_desired_state(
    models: dict[str, ModelSpec], watcher: Watcher, device: Device
) -> None:
    m1, m2 = models["m1"], models["m2"]
    watcher.publish_desired(desired(KEY, 1, line_doc(m1)))
    watcher.publish_desired(desired(KEY, 2, line_doc(m2, previous=m1)))
    wait_for("the new model serving", lambda: device.decided_by("cand@2"))
    watcher.publish_desired(desired(KEY, 3, line_doc(m1, previous=m2)))
    wait_for(
        "rollback activation",
        lambda: any(
            e["type"] == "activation" and e["reason"] == "standby-switch"
            for e in watcher.bodies("events")
        ),
    )
    wait_for("the old model serving again", lambda: device.decided_by("inc@1"))


def test_events_queued_offline_survive_a_restart_and_arrive_in_order(
    tmp_path: Path, models: dict[str, ModelSpec], broker: Mosquitto, watcher: Watcher
) -> None:
    doc = line_doc(models["m1"], candidate=models["crashy"], stage="shadow")
    watcher.publish_desired(desired(KEY, 1, doc))
    first = Device(tmp_path, broker)
    try:
        wait_for("activation", lambda: bool(watcher.bodies("events")))
        broker.stop()
        first.show(220)  # the candidate crashes: fallback + re-activation, queued offline
        wait_for("the bright frame decided", lambda: len(first.decisions()) == 1)
        time.sleep(0.5)
    finally:
        first.close()  # the device restarts while still offline
    second = Device(tmp_path, broker)
    second.count = first.count
    try:
        second.show(40)
        wait_for(
            "serving after the restart",
            lambda: any(
                d["frame_id"] == "f00002.png" and d["model"] == "inc@1" for d in second.decisions()
            ),
        )
        broker.start()
        wait_for("queued events delivered", lambda: len(watcher.bodies("events")) >= 3)
        events = watcher.bodies("events")
        assert [(e["seq"], e["type"]) for e in events][:3] == [
            (1, "activation"),
            (2, "fallback"),
            (3, "activation"),
        ]
    finally:
        second.close()
