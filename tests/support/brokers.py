"""One MQTT broker per engine linefleet is tested against, behind one fixture.

    @pytest.mark.parametrize("broker", ["mosquitto", "nats-cluster"], indirect=True)
    def test_x(broker: Broker) -> None:
        BrokerAddress.parse(broker.url)

- `mosquitto`: one Mosquitto (tests/support/mosquitto.py), fresh per test;
- `nats-cluster`: three NATS nodes with JetStream and MQTT, replicas on all three
  (tests/support/nats.py); `url` lists every node, so clients fail over;
- `rabbitmq`: one private RabbitMQ node with `rabbitmq_mqtt` (tests/support/rabbitmq.py).
The NATS cluster (~7 s to elect its JetStream leaders) and RabbitMQ (10 s to minutes to boot)
are shared by the session: tests on them use their own topics or, publishing a fleet, their
own signing key (so nothing retained by an earlier test passes for theirs). A test that kills
nodes starts its own cluster.

Without the broker's binary the test is skipped, naming the package to install; under `CI=true`
it fails instead (`.ci/run` installs all three).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from tests.support import nats, rabbitmq
from tests.support.mosquitto import MOSQUITTO, Mosquitto
from tests.support.server import Cluster

ENGINES = ("mosquitto", "nats-cluster", "rabbitmq")
FULL = ENGINES
"""The engines linefleet's reconciler runs on: all three (on RabbitMQ's plugin it reads the
fleet's retained state by exact-topic subscriptions: docs/protocol.md, section 14)."""


class Broker(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def url(self) -> str: ...


def url_via(broker: Broker, index: int) -> str:
    """The broker's URL for a client that should start on node `index` of a cluster (and fail
    over to the others); a single broker's URL otherwise."""
    return broker.url_from(index) if isinstance(broker, Cluster) else broker.url


def unavailable(engine: str) -> str:
    """Why `engine` cannot run here ("" when it can)."""
    if engine == "mosquitto" and not Path(MOSQUITTO).exists():
        return "mosquitto is not installed (apt-get install mosquitto)"
    if engine == "nats-cluster" and not nats.available():
        return "nats-server is not installed (apt-get install nats-server)"
    if engine == "rabbitmq" and not rabbitmq.available():
        return "rabbitmq-server is not installed (apt-get install rabbitmq-server)"
    return ""


def require(engine: str) -> None:
    if reason := unavailable(engine):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def rabbitmq_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rabbitmq.RabbitMQ]:
    require("rabbitmq")
    node = rabbitmq.RabbitMQ(tmp_path_factory.mktemp("rabbitmq")).start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[nats.NatsCluster]:
    require("nats-cluster")
    cluster = nats.NatsCluster(tmp_path_factory.mktemp("nats")).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
    """The broker named by the test's parameter (`indirect=True`), running."""
    engine: str = request.param
    require(engine)
    shared = {"nats-cluster": "nats_cluster", "rabbitmq": "rabbitmq_node"}
    if engine in shared:
        yield request.getfixturevalue(shared[engine])
        return
    with Mosquitto(tmp_path / "mosquitto") as server:
        yield server
