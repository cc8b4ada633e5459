"""An inspector's override, from the CLI on the device to the trainer's label store.

A real Mosquitto, `edge run` in a thread (as the CLI runs it), `linefleet edge override` while
the agent runs, the trainer's listener (a persistent session) and its ingest. The override
must arrive exactly once, after its frame, with what the model said and who said it.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_puller.runner import RunOptions, run
from linefleet.cli import main
from linefleet_core import wire
from linefleet_core.mqtturl import BrokerAddress
from linefleet_core.signing import SigningKey
from tests.support.mosquitto import Mosquitto
from tests.support.trainer_data import taxonomies
from tests.support.waiting import wait_for
from tests.unit.edge.documents import desired, line_doc
from tests.unit.edge.helpers import spec_for
from trainer.events import EventKind
from trainer.frames import FrameStore
from trainer.mqtt_listen import listen
from trainer.overrides import OVERRIDE_TYPE, ingest
from trainer.store import LabelStore

pytestmark = pytest.mark.integration
KEY = SigningKey.generate()


def _decisions(results: Path) -> list[dict[str, object]]:
    if not results.exists():
        return []
    return [json.loads(x) for x in results.read_text().split("\n")[:-1] if x]


def test_override_from_the_cli_reaches_the_trainer_exactly_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    serving = spec_for(tmp_path / "src", "inc", 1)
    frames, results, state = tmp_path / "frames", tmp_path / "results.jsonl", tmp_path / "state"
    frames.mkdir()
    with Mosquitto(tmp_path / "broker") as broker:
        assert listen(broker.url, 0.1) == ([], [])  # the trainer's persistent session starts
        publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-reconciler")
        publisher.connect(broker.host, broker.port)
        publisher.loop_start()
        desired_topic = wire.topic("plant", "dev-1", wire.Channel.DESIRED)
        payload = desired(KEY, 1, line_doc(serving))
        publisher.publish(desired_topic, payload, qos=1, retain=True).wait_for_publish(5)
        publisher.disconnect()
        publisher.loop_stop()

        options = RunOptions(
            site="plant",
            device="dev-1",
            broker=BrokerAddress.parse(broker.url),
            state_dir=state,
            frames=str(frames),
            trusted_keys={KEY.key_id: KEY.public},
            results=results,
            artifact_roots=(tmp_path / "src",),
        )
        stop = threading.Event()
        agent = threading.Thread(target=run, args=(options, stop), daemon=True)
        agent.start()
        try:
            shown = 0

            def decided_by_the_model() -> bool:
                nonlocal shown
                found = _decisions(results)
                if found and found[-1].get("model") == "inc@1":
                    return True
                if len(found) == shown:  # the last frame is decided: show another
                    shown += 1
                    image = np.full((48, 64, 3), 220, dtype=np.uint8)
                    cv2.imwrite(str(frames / f"f{shown:04d}.png"), image)
                return False

            wait_for("a decision by inc@1", decided_by_the_model)
            frame_id = str(_decisions(results)[-1]["frame_id"])
            capsys.readouterr()
            argv = ["edge", "override", "--state-dir", str(state), "--frame", frame_id,
                    "--label", "scratch", "--inspector", "insp-7"]  # fmt: skip
            wait_for("the decision in the recent record", lambda: main(argv) != 2, timeout=10)
            assert "queued inspection-override" in capsys.readouterr().out

            events: list[bytes] = []
            received: list[bytes] = []

            def override_arrived() -> bool:
                got_events, got_frames = listen(broker.url, 0.3)
                events.extend(got_events)
                received.extend(got_frames)
                return any(json.loads(e)["type"] == OVERRIDE_TYPE for e in events)

            wait_for("the override at the trainer", override_arrived)
            events_now, frames_now = listen(broker.url, 0.5)  # nothing more comes
            events += events_now
            received += frames_now
        finally:
            stop.set()
            agent.join(20)

    overrides = [json.loads(e) for e in events if json.loads(e)["type"] == OVERRIDE_TYPE]
    assert len(overrides) == 1
    (event,) = overrides
    assert (event["line"], event["site"], event["device"]) == ("plant/line-1", "plant", "dev-1")
    details = event["details"]
    assert {k: details[k] for k in ("camera", "model", "predicted", "label", "inspector")} == {
        "camera": "cam-1", "model": "inc@1", "predicted": "ok", "label": "scratch",
        "inspector": "insp-7",
    }  # fmt: skip
    metas = [wire.decode_frame(p)[0] for p in received]
    assert details["frame_sha256"] in {m.sha256 for m in metas if m.frame_id == frame_id}

    store = LabelStore.open(f"sqlite:///{tmp_path / 'labels.db'}", taxonomies())
    try:
        first = ingest(store, FrameStore(tmp_path / "frame-store"), events, received)
        assert (first.queued, first.duplicates, first.invalid) == (1, 0, [])
        again = ingest(store, FrameStore(tmp_path / "frame-store"), events, received)
        assert (again.queued, again.duplicates) == (0, 1)  # a redelivery is not a second label
        (stored,) = [e for e in store.events() if e.kind is EventKind.OVERRIDE]
    finally:
        store.close()
    assert (stored.frame, stored.cls, stored.model_said, stored.model_version, stored.actor) == (
        details["frame_sha256"], "scratch", "ok", "inc@1", "insp-7",
    )  # fmt: skip
    assert (stored.site, stored.line, stored.camera) == ("plant", "line-1", "cam-1")
