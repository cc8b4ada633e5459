"""`linefleet broker config --engine nats` on a real nats-server (docs/protocol.md, 14): each
device account reads only its own `desired` topic and writes only its own status topics, the
reconciler's account publishes the fleet; a device cannot read (or overwrite) another's."""

from __future__ import annotations

import json
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from linefleet.cli import main
from linefleet_core.signing import SigningKey
from reconciler.broker import NATS_CONF, subject
from tests.support import minifleet
from tests.support.brokers import require
from tests.support.nats import GeneratedNats
from tests.support.server import free_port
from tests.support.waiting import until

pytestmark = pytest.mark.integration
T = "linefleet/v1"
OWN = f"{T}/toledo/toledo-edge-1/desired"
OTHER = f"{T}/toledo/toledo-edge-2/desired"


class Client:
    def __init__(self, port: int, user: str, password: str) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.subacks: dict[int, list[Any]] = {}
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"t-{user}-{uuid.uuid4().hex[:6]}",
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        self.client.username_pw_set(user, password)
        self.client.on_message = lambda _c, _u, m: self.got.append((m.topic, bytes(m.payload)))
        self.client.on_subscribe = lambda _c, _u, mid, codes, _p: self.subacks.update(
            {mid: list(codes)}
        )
        connected: list[Any] = []
        self.client.on_connect = lambda _c, _u, _f, rc, _p: connected.append(rc)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        deadline = time.monotonic() + 20
        while not connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert connected and not connected[0].is_failure, f"{user}: {connected}"

    def subscribe(self, topic_filter: str) -> bool:
        """Whether the broker granted the subscription (QoS 1)."""
        _, mid = self.client.subscribe(topic_filter, qos=1)
        assert mid is not None
        deadline = time.monotonic() + 20
        while mid not in self.subacks and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self.subacks[mid][0].is_failure

    def subscribe_eventually(self, topic_filter: str, timeout: float = 30.0) -> bool:
        """A subscription the account is allowed: a cluster node under load may refuse it for
        a while (its JetStream consumer not created in time), as linefleet's sessions find
        and retry (`linefleet_core.mqttsession`). Only for grants: a refusal to assert is
        asked once."""
        deadline = time.monotonic() + timeout
        while not self.subscribe(topic_filter):
            if time.monotonic() > deadline:
                return False
            time.sleep(1.0)
        return True

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1, retain=True).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_for_message(client: Client, topic: str, timeout: float = 10.0) -> list[bytes]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [p for t, p in client.got if t == topic]
        if found:
            return found
        time.sleep(0.05)
    return []


def test_subjects_follow_the_gateway_s_mapping() -> None:
    assert subject("linefleet/v1/+/+/desired") == "linefleet.v1.*.*.desired"
    assert subject("linefleet/v1/#") == "linefleet.v1.>"


def test_a_device_reads_only_its_own_desired_state_on_nats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require("nats-cluster")
    repo = tmp_path / "fleet"
    minifleet.write_minifleet(repo)
    out, port = tmp_path / "broker", free_port()
    argv = ["broker", "config", "--engine", "nats", "--repo", str(repo), "--out", str(out)]
    argv += ["--port", str(port), "--bind", "127.0.0.1", "--nats-port", str(free_port())]
    argv += ["--data-dir", str(tmp_path / "js")]
    assert main(argv) == 0
    assert "3 devices" in capsys.readouterr().out
    conf = out / NATS_CONF
    assert conf.stat().st_mode & 0o077 == 0  # passwords inside: the owner's only
    creds = json.loads((out / "credentials.json").read_text())

    with GeneratedNats(tmp_path / "nats", conf, port) as server:
        reconciler = Client(server.port, "linefleet-reconciler", creds["linefleet-reconciler"])
        # linefleet's own publish, with the reconciler's account, over the gateway
        key = SigningKey.generate().write(tmp_path / "keys")[0]
        minifleet.init_repo(repo)
        minifleet.commit_all(repo, "fleet")
        url = f"mqtt://linefleet-reconciler:{creds['linefleet-reconciler']}@127.0.0.1:{port}"
        publish = ["publish", "--broker", url, "--repo", str(repo), "--signing-key", str(key)]
        assert main([*publish, "--artifact-base", "file:///x"]) == 0
        assert "3 published" in capsys.readouterr().out

        edge = Client(server.port, "toledo-edge-1", creds["toledo-edge-1"])
        assert edge.subscribe(OWN)
        assert json.loads(wait_for_message(edge, OWN)[0])["device"] == "toledo-edge-1"
        # another device's document, and the fleet's wildcard: refused
        assert not edge.subscribe(OTHER)
        assert not edge.subscribe(f"{T}/#")
        assert not edge.subscribe(f"{T}/+/+/desired")
        assert not edge.subscribe("$MQTT/sub/#")  # where NATS delivers others' subscriptions
        # its own status is accepted; another's desired state is dropped, not stored
        edge.publish(f"{T}/toledo/toledo-edge-1/reported", b'{"ok": 1}')
        edge.publish(OTHER, b"forged")
        assert reconciler.subscribe(f"{T}/+/+/+")
        time.sleep(1.0)
        by_topic = dict(reconciler.got)
        assert by_topic[f"{T}/toledo/toledo-edge-1/reported"] == b'{"ok": 1}'
        assert json.loads(by_topic[OTHER])["device"] == "toledo-edge-2"  # not "forged"
        assert [p for t, p in edge.got if t != OWN] == []
        edge.close()
        reconciler.close()


def session_opens(port: int, user: str, password: str) -> bool:
    """A persistent session opens on the node (its JetStream is ready: a fresh cluster
    needs seconds to elect its leaders)."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"ready-{uuid.uuid4().hex[:8]}", clean_session=False
    )
    client.username_pw_set(user, password)
    try:
        client.connect("127.0.0.1", port, keepalive=10)
    except OSError:
        return False
    outcome: list[bool] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: outcome.append(not reason.is_failure)
    deadline = time.monotonic() + 6.0
    while not outcome and time.monotonic() < deadline:
        if client.loop(timeout=0.1) != mqtt.MQTT_ERR_SUCCESS:
            break
    client.disconnect()
    return bool(outcome and outcome[0])


def test_a_generated_three_node_cluster_carries_the_fleet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--server-name`, `--cluster-listen` and `--routes` per node, sharing credentials.json:
    the nodes route to each other (authenticated), linefleet publishes through node 0 and a
    device reads its document, and only its own, from node 2."""
    require("nats-cluster")
    repo = tmp_path / "fleet"
    minifleet.write_minifleet(repo)
    mqtt_ports = [free_port() for _ in range(3)]
    route_ports = [free_port() for _ in range(3)]
    creds_file = tmp_path / "credentials.json"
    confs = []
    for i in range(3):
        out = tmp_path / f"node{i}"
        others = ",".join(f"127.0.0.1:{p}" for j, p in enumerate(route_ports) if j != i)
        argv = ["broker", "config", "--engine", "nats", "--repo", str(repo), "--out", str(out)]
        argv += ["--port", str(mqtt_ports[i]), "--bind", "127.0.0.1"]
        argv += ["--nats-port", str(free_port()), "--data-dir", str(tmp_path / f"js{i}")]
        argv += ["--server-name", f"n{i}", "--cluster-listen", f"127.0.0.1:{route_ports[i]}"]
        argv += ["--routes", others, "--credentials", str(creds_file)]
        assert main(argv) == 0
        confs.append(out / NATS_CONF)
    capsys.readouterr()
    text = confs[0].read_text()
    assert "stream_replicas: 3, consumer_replicas: 3" in text and "nats-route://" in text
    creds = json.loads(creds_file.read_text())
    rec = "linefleet-reconciler"
    nodes = [GeneratedNats(tmp_path / f"run{i}", confs[i], mqtt_ports[i]) for i in range(3)]
    try:
        for node in nodes:
            node.start()
        for port in mqtt_ports:
            assert until(partial(session_opens, port, rec, creds[rec]), 90, 0.5), port
        key = SigningKey.generate().write(tmp_path / "keys")[0]
        minifleet.init_repo(repo)
        minifleet.commit_all(repo, "fleet")
        hosts = ",".join(f"127.0.0.1:{p}" for p in mqtt_ports)
        url = f"mqtt://{rec}:{creds[rec]}@{hosts}"
        publish = ["publish", "--broker", url, "--repo", str(repo), "--signing-key", str(key)]
        assert main([*publish, "--artifact-base", "file:///x"]) == 0
        assert "3 published" in capsys.readouterr().out

        edge = Client(mqtt_ports[2], "toledo-edge-1", creds["toledo-edge-1"])
        assert edge.subscribe_eventually(OWN)  # on node 2: the retained copy came over the routes
        assert json.loads(wait_for_message(edge, OWN)[0])["device"] == "toledo-edge-1"
        assert not edge.subscribe(OTHER)
        edge.close()
    finally:
        for node in nodes:
            node.stop()
