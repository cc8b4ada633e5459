"""Overrides over a real Mosquitto: sent while the trainer is away, queued on its next run."""

from __future__ import annotations

import hashlib
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from linefleet.cli import main
from linefleet_core import wire
from tests.support.mosquitto import Mosquitto
from tests.support.trainer_data import frame_payload, jpeg, override_event, write_taxonomies
from trainer.mqtt_listen import listen

pytestmark = pytest.mark.integration


def _publish(broker: Mosquitto, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-edge")
    client.connect(broker.host, broker.port)
    client.loop_start()
    for topic, payload in messages:
        client.publish(topic, payload, qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def test_overrides_sent_while_the_trainer_was_away_are_queued(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    write_taxonomies(repo)
    with Mosquitto(tmp_path / "broker") as broker:
        assert listen(broker.url, 0.1) == ([], [])  # first run: the persistent session starts
        data = jpeg(7)
        sha = hashlib.sha256(data).hexdigest()
        _publish(
            broker,
            [
                (
                    wire.topic("toledo", "tol-edge-01", wire.Channel.FRAMES),
                    frame_payload(data, "f7"),
                ),
                (
                    wire.topic("toledo", "tol-edge-01", wire.Channel.EVENTS),
                    override_event(5, sha, "oil"),
                ),
            ],
        )
        args = ["labels", "ingest-events", "--broker", broker.url, "--seconds", "0.5"]
        ws = ["--state", str(tmp_path / "state"), "--fleet-repo", str(repo)]
        assert main([*args, *ws]) == 0
        assert "queued 1 override(s) for QA, 1 frame(s) stored" in capsys.readouterr().out
    assert main(["labels", "ingest-events", "--broker", broker.url, *ws]) == 4
    assert "unreachable" in capsys.readouterr().err


def test_a_refused_frame_names_its_topic_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A frame with broken metadata printed pydantic's whole report (40 lines with links per
    frame) as `frames payload N`, without the device that sent it."""
    repo = tmp_path / "repo"
    write_taxonomies(repo)
    topic = wire.topic("toledo", "tol-edge-01", wire.Channel.FRAMES)
    meta = b'{"protocol": 1}'
    broken = b"LFF1" + len(meta).to_bytes(4, "big") + meta + jpeg(1)
    with Mosquitto(tmp_path / "broker") as broker:
        assert listen(broker.url, 0.1) == ([], [])  # the persistent session starts
        _publish(broker, [(topic, broken), (topic, frame_payload(jpeg(2), "f2"))])
        args = ["labels", "ingest-events", "--broker", broker.url, "--seconds", "0.5"]
        ws = ["--state", str(tmp_path / "state"), "--fleet-repo", str(repo)]
        assert main([*args, *ws]) == 1
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        f"skipped: {topic} message 1: bad frame metadata: kind: Field required (and 12 more)"
    ]
    assert "1 frame(s) stored" in out
