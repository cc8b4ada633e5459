"""A real RabbitMQ cluster (two nodes with `rabbitmq_mqtt`, tests/support/rabbitmq.py): what it
carries across nodes, and what linefleet does about what it does not (docs/protocol.md, 14).

RabbitMQ 3.10's MQTT plugin keeps retained messages on the node they were published to: a
device connected to another node would never get its retained desired state, and the reports
it retains there are invisible to a reader on the first node. Live QoS 1 messages, queued for
a persistent session while it is away, do cross nodes. So linefleet, given a cluster's nodes,
checks that a retained message published through one is held by the others and refuses the
broker otherwise; pointed at one node it works as on a single RabbitMQ. The same check passes
on the NATS cluster, whose nodes share retained messages.

The two nodes boot once for this module (about a minute on a loaded 2-core machine).
"""

from __future__ import annotations

import json
import queue
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from linefleet.cli import main
from linefleet_core.mqttsession import RetainedUnsupported, retained_snapshot
from linefleet_core.mqtturl import BrokerAddress
from linefleet_core.signing import SigningKey
from tests.support import minifleet
from tests.support.brokers import require
from tests.support.nats import NatsCluster
from tests.support.rabbitmq import RabbitCluster, RabbitMQ
from trainer.mqtt_listen import read_drift

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitCluster]:
    require("rabbitmq")
    rabbits = RabbitCluster(tmp_path_factory.mktemp("rabbit-cluster"), size=2).start()
    try:
        yield rabbits
    finally:
        rabbits.stop()


def connect(node: RabbitMQ, client_id: str = "", *, clean: bool = True) -> mqtt.Client:
    c = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or f"lf-c-{uuid.uuid4().hex[:8]}",
        clean_session=clean,
    )
    c.connect(node.host, node.port)
    c.loop_start()
    return c


def close(c: mqtt.Client) -> None:
    c.disconnect()
    c.loop_stop()


def arrivals(
    node: RabbitMQ, topic: str, client_id: str = "", *, clean: bool = True
) -> list[tuple[bytes, bool]]:
    """What a subscriber of `topic` on `node` gets within its SUBACK and our marker after it:
    [(payload, retain)] (a marker published after the SUBACK on the same connection comes
    after whatever the subscription queued)."""
    got: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    marker = f"linefleet/v1/_barrier/{uuid.uuid4().hex[:8]}"
    c = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or f"lf-a-{uuid.uuid4().hex[:8]}",
        clean_session=clean,
    )
    c.on_message = lambda _c, _u, msg: got.put(msg)
    c.connect(node.host, node.port)
    c.loop_start()
    try:
        c.subscribe([(topic, 1), (marker, 1)])
        c.publish(marker, b"end", qos=1).wait_for_publish(15)
        out = []
        while (msg := got.get(timeout=30)).topic != marker:
            out.append((bytes(msg.payload), bool(msg.retain)))
        return out
    finally:
        close(c)


def test_retained_messages_stay_on_their_node_while_queued_ones_cross(
    cluster: RabbitCluster,
) -> None:
    """The engine's behaviour this module's refusal rests on (if a RabbitMQ release shares
    retained messages across nodes, this fails: then re-test the cluster for linefleet)."""
    first, second = cluster.nodes
    topic = f"linefleet/v1/c{uuid.uuid4().hex[:8]}/edge-1/desired"
    session = f"lf-s-{uuid.uuid4().hex[:8]}"
    assert arrivals(second, topic, session, clean=False) == []  # a persistent session exists
    publisher = connect(first)
    try:
        publisher.publish(topic, b"doc-1", qos=1, retain=True).wait_for_publish(15)
    finally:
        close(publisher)

    assert arrivals(first, topic) == [(b"doc-1", True)]  # its own node holds it
    assert arrivals(second, topic) == []  # the other node does not
    # ... but the persistent session on the other node had it queued while away
    assert arrivals(second, topic, session, clean=False) == [(b"doc-1", False)]


def fleet(tmp_path: Path) -> tuple[Path, Path, str]:
    repo = tmp_path / "fleet"
    minifleet.write_minifleet(repo)
    minifleet.init_repo(repo)
    commit = minifleet.commit_all(repo, "initial fleet")
    key, _ = SigningKey.generate().write(tmp_path / "keys")
    return repo, key, commit


def test_linefleet_refuses_the_cluster_and_works_on_one_of_its_nodes(
    cluster: RabbitCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo, key, commit = fleet(tmp_path)
    first = cluster.nodes[0]
    for command in (
        ["publish", "--broker", cluster.url, "--repo", str(repo), "--signing-key", str(key)],
        ["status", "--broker", cluster.url_from(1), "--repo", str(repo)],
    ):
        assert main(command) == 1
        err = capsys.readouterr().err
        assert "is not held by" in err and "each keep their own retained messages" in err, err
        assert "Traceback" not in err
    with pytest.raises(RetainedUnsupported, match="each keep their own retained"):
        read_drift(cluster.url, [("toledo", "toledo-edge-1")])

    # Pointed at one node, linefleet works as on a single RabbitMQ (by exact topic).
    args = ["publish", "--broker", first.url, "--repo", str(repo), "--signing-key", str(key)]
    assert main([*args, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["published"] == 3
    assert main(["status", "--broker", first.url, "--repo", str(repo), "--format", "json"]) == 0
    seen = json.loads(capsys.readouterr().out)["devices"]
    assert {(d["desired"] or {}).get("commit") for d in seen} == {commit}, seen


def test_the_check_passes_where_the_nodes_share_retained_messages(
    nats_cluster: NatsCluster,
) -> None:
    """Read by exact topic through the NATS cluster's three nodes, the same check finds the
    retained probe on every node and the read goes on."""
    topic = f"linefleet/v1/c{uuid.uuid4().hex[:8]}/edge-1/desired"
    address = BrokerAddress.parse(f"{nats_cluster.url}?retained=exact")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"lf-n-{uuid.uuid4().hex[:8]}")
    client.connect(nats_cluster.host, nats_cluster.port)
    client.loop_start()
    try:
        client.publish(topic, b"doc", qos=1, retain=True).wait_for_publish(15)
    finally:
        close(client)
    snapshot = retained_snapshot(address, topic, f"lf-r-{uuid.uuid4().hex[:8]}", qos=0)
    assert snapshot[topic].payload == b"doc"
