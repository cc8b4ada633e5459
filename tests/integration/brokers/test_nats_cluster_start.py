"""The test NATS cluster starts even when a port it was given is taken before it binds it
(another test's broker or a RabbitMQ node can take a port `free_port` just found free)."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.support.brokers import require
from tests.support.nats import NatsCluster


def test_a_route_port_taken_before_the_cluster_binds_it_gets_new_ports(tmp_path: Path) -> None:
    require("nats-cluster")
    cluster = NatsCluster(tmp_path / "nats")
    taken = cluster.nodes[1].route_port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        with cluster:
            assert cluster.nodes[1].route_port != taken
            assert all(taken not in node.routes for node in cluster.nodes)
            assert "address already in use" in cluster.nodes[1].log()  # the first try failed
