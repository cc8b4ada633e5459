"""Reading retained state by exact topic: RabbitMQ's MQTT plugin, and Mosquitto told to
(`?retained=exact` on the broker URL).

RabbitMQ 3.10's plugin keeps retained messages but hands them only to a subscription of their
exact topic, so `publish` and `status` read each known device's topics one by one
(docs/protocol.md, section 14). Here, on both: two publishes; a removed device gets its
tombstone (from the publish marker's commit, and with the marker gone, from the commit its
old document names) and its reported and online state are cleared; `status --repo` reads
every device of the fleet and says that a device outside it is invisible, and without --repo
it refuses; `linefleet reconcile` follows a branch, records a live event and tombstones a
removed device. A RabbitMQ that keeps no retained messages at all is still refused, clearly.
"""

from __future__ import annotations

import json
import queue
import signal
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import git
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from linefleet.cli import main
from linefleet_core.mqttsession import RetainedUnsupported, retained_snapshot
from linefleet_core.mqtturl import BrokerAddress
from linefleet_core.signing import SigningKey
from linefleet_core.wire import online_payload
from reconciler.service.marker import MARKER_TOPIC
from tests.integration.mqtt.conftest import ACTIVATION, EVENT_TOPIC, ack, activation_recorded
from tests.support import minifleet
from tests.support.brokers import Broker, require
from tests.support.rabbitmq import RabbitMQ
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
EXACT = ("mosquitto", "rabbitmq")
DEVICES = ("toledo/toledo-edge-1", "toledo/toledo-edge-2", "dresden/dresden-edge-1")


def exact_url(broker: Broker) -> str:
    """RabbitMQ finds out by itself; Mosquitto (which would serve wildcards) is told."""
    return broker.url if broker.name == "rabbitmq-server" else f"{broker.url}?retained=exact"


def client(broker: Broker) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"lf-x-{uuid.uuid4().hex[:8]}")
    c.connect(broker.host, broker.port)
    c.loop_start()
    return c


def send(broker: Broker, messages: list[tuple[str, bytes]]) -> None:
    """Retained, QoS 1, every PUBACK received (an independent paho client)."""
    c = client(broker)
    try:
        for info in [c.publish(t, p, qos=1, retain=True) for t, p in messages]:
            info.wait_for_publish(15)
    finally:
        c.disconnect()
        c.loop_stop()


def held(broker: Broker, topic: str) -> bytes | None:
    """The retained payload on `topic`, as a fresh subscriber of that exact topic gets it
    (None: nothing retained, or an empty payload)."""
    got: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"lf-h-{uuid.uuid4().hex[:8]}")
    c.on_message = lambda _c, _u, msg: got.put(msg)
    c.connect(broker.host, broker.port)
    c.loop_start()
    try:
        c.subscribe(topic, qos=1)
        try:
            msg = got.get(timeout=1.5)
        except queue.Empty:
            return None
        return bytes(msg.payload) if msg.retain and msg.payload else None
    finally:
        c.disconnect()
        c.loop_stop()


def publish(
    url: str, repo: Path, key: Path, capsys: pytest.CaptureFixture[str], *more: str
) -> dict[str, Any]:
    args = ["publish", "--broker", url, "--repo", str(repo), "--signing-key", str(key)]
    code = main([*args, "--format", "json", *more])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize("broker", EXACT, indirect=True)
def test_two_publishes_and_tombstones_by_exact_topic(
    broker: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = exact_url(broker)
    repo = tmp_path / "fleet"
    minifleet.write_minifleet(repo)
    minifleet.init_repo(repo)
    minifleet.commit_all(repo, "initial fleet")
    signing = SigningKey.generate()
    key, _ = signing.write(tmp_path / "keys")
    first = publish(url, repo, key, capsys)
    assert first["published"] == 3
    again = publish(url, repo, key, capsys, "--full")
    assert (again["mode"], again["published"], again["unchanged"]) == ("full", 0, 3)

    gone = "linefleet/v1/toledo/toledo-edge-2"
    last = held(broker, f"{gone}/desired")
    assert last is not None
    send(broker, [(f"{gone}/reported", ack(last)), (f"{gone}/online", online_payload(True))])
    minifleet.device_file(repo, "toledo", "toledo-edge-2").unlink()
    minifleet.commit_all(repo, "retire toledo-edge-2")
    # the full pass: the old device is known from the commit the publish marker names
    removed = publish(url, repo, key, capsys, "--full")
    assert (removed["published"], removed["pruned"], removed["devices"]) == (0, 1, 2)
    assert removed["pruned_topics"] == [f"{gone}/desired"]
    tomb = json.loads(held(broker, f"{gone}/desired") or b"{}")
    assert (tomb.get("kind"), tomb.get("commit")) == ("Removed", removed["commit"])
    assert held(broker, f"{gone}/reported") is None and held(broker, f"{gone}/online") is None

    # No marker (a publish cut off half-way clears it): the old device is found through the
    # commit its own retained document names, which the remaining devices' documents name too.
    send(broker, [(MARKER_TOPIC, b"")])
    other = "linefleet/v1/dresden/dresden-edge-1"
    minifleet.device_file(repo, "dresden", "dresden-edge-1").unlink()
    minifleet.commit_all(repo, "retire dresden-edge-1")
    second = publish(url, repo, key, capsys)
    assert second["mode"] == "full" and "no publish marker" in second["full_reason"]
    assert second["pruned_topics"] == [f"{other}/desired"]  # toledo-edge-2 is a tombstone
    assert json.loads(held(broker, f"{other}/desired") or b"{}").get("kind") == "Removed"
    assert publish(url, repo, key, capsys)["published"] == 0  # and now nothing to do


@pytest.mark.parametrize("broker", EXACT, indirect=True)
def test_status_reads_the_fleet_by_exact_topic_and_says_what_it_cannot_see(
    broker: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = exact_url(broker)
    repo = tmp_path / "fleet"
    minifleet.write_minifleet(repo)
    minifleet.init_repo(repo)
    minifleet.commit_all(repo, "initial fleet")
    key, _ = SigningKey.generate().write(tmp_path / "keys")
    commit = publish(url, repo, key, capsys)["commit"]
    device = "linefleet/v1/toledo/toledo-edge-1"
    report = ack(held(broker, f"{device}/desired") or b"")
    name = f"stranger-{uuid.uuid4().hex[:6]}"
    stranger = f"linefleet/v1/toledo/{name}"
    send(
        broker,
        [
            (f"{device}/reported", report),
            (f"{device}/online", online_payload(True)),
            (f"{stranger}/reported", report.replace(b'"toledo-edge-1"', f'"{name}"'.encode())),
        ],
    )
    assert main(["status", "--broker", url, "--repo", str(repo), "--format", "json"]) == 0
    status = json.loads(capsys.readouterr().out)
    by = {f"{d['site']}/{d['device']}": d for d in status["devices"]}
    assert set(by) == set(DEVICES)  # the stranger is not seen: nobody named its topics
    assert {k for k, d in by.items() if (d["desired"] or {}).get("commit") == commit} == set(
        DEVICES
    )
    assert by["toledo/toledo-edge-1"]["condition"] == "Synced"
    (note,) = status["notes"]
    assert "read by exact topic" in note and "invisible" in note
    assert ("only to exact-topic" in note) == (broker.name == "rabbitmq-server")

    assert main(["status", "--broker", url, "--repo", str(repo)]) == 0
    table = capsys.readouterr().out
    assert "note: broker" in table and "3 device(s)" in note + table

    assert main(["status", "--broker", url]) == 1  # no fleet: no topics to read
    err = capsys.readouterr().err
    assert "knows no exact topics" in err and "--repo" in err and "Traceback" not in err


def test_a_rabbitmq_that_keeps_no_retained_messages_stays_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require("rabbitmq")
    repo = tmp_path / "fleet"
    minifleet.write_minifleet(repo)
    minifleet.init_repo(repo)
    minifleet.commit_all(repo, "initial fleet")
    key, _ = SigningKey.generate().write(tmp_path / "keys")
    with RabbitMQ(tmp_path / "rabbit", keep_retained=False) as node:
        args = ["--broker", node.url, "--repo", str(repo)]
        assert main(["publish", *args, "--signing-key", str(key)]) == 1
        err = capsys.readouterr().err
        assert f"broker {node.url} keeps no retained messages" in err
        assert "Traceback" not in err
        assert main(["status", *args]) == 1
        assert "keeps no retained messages" in capsys.readouterr().err
        with pytest.raises(RetainedUnsupported, match="keeps no retained"):
            retained_snapshot(BrokerAddress.parse(node.url), MARKER_TOPIC, "lf-x-marker")


@pytest.mark.parametrize("broker", EXACT, indirect=True)
def test_reconcile_follows_the_branch_and_tombstones_by_exact_topic(
    broker: Broker, tmp_path: Path
) -> None:
    repo = tmp_path / "fleet"
    minifleet.write_minifleet(repo)
    minifleet.init_repo(repo)
    minifleet.commit_all(repo, "initial fleet")
    bare = tmp_path / "remote.git"
    git.Repo.init(bare, bare=True, initial_branch="main")
    git.Repo(repo).create_remote("origin", str(bare))
    git.Repo(repo).remote("origin").push("main:main").raise_if_error()
    clone = tmp_path / "clone"
    git.Repo.clone_from(str(bare), clone)
    signing = SigningKey.generate()  # its own key: a shared broker holds other tests' documents
    key, _ = signing.write(tmp_path / "keys")
    state = tmp_path / "state"
    name = f"rabbit-{uuid.uuid4().hex[:6]}"  # its own persistent session on a shared broker
    argv = [sys.executable, "-m", "linefleet", "reconcile", "--broker", exact_url(broker)]
    argv += ["--repo", str(clone), "--state-dir", str(state), "--signing-key", str(key)]
    argv += ["--interval", "0.3", "--name", name]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    gone = "linefleet/v1/toledo/toledo-edge-2"
    try:

        def document(topic: str) -> dict[str, Any]:
            doc = json.loads(held(broker, topic) or b"{}")
            return doc if isinstance(doc, dict) else {}

        def ours(doc: dict[str, Any]) -> bool:
            return (doc.get("signature") or {}).get("key_id") == signing.key_id

        wait_for("the first publish", lambda: ours(document(f"{gone}/desired")))
        c = client(broker)  # a live event: the reconciler's wildcard session records it
        c.publish(EVENT_TOPIC, ACTIVATION, qos=1).wait_for_publish(15)
        c.disconnect()
        c.loop_stop()

        wait_for("the live event recorded", lambda: activation_recorded(state))
        minifleet.device_file(repo, "toledo", "toledo-edge-2").unlink()
        minifleet.commit_all(repo, "retire toledo-edge-2")
        git.Repo(repo).remote("origin").push("main:main").raise_if_error()
        wait_for(
            "the tombstone",
            lambda: ours(tomb := document(f"{gone}/desired")) and tomb.get("kind") == "Removed",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "1 pruned" in out, out
    with sqlite3.connect(state / "reconciler.sqlite3") as conn:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    assert meta["last_applied_commit"] == git.Repo(repo).head.commit.hexsha
    assert meta["last_error"] == ""
