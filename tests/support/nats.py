"""A real NATS cluster speaking MQTT for tests: three `nats-server` nodes on loopback ports.

    with NatsCluster(tmp_path / "nats") as cluster:
        BrokerAddress.parse(cluster.url)          # mqtt://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3
        cluster.nodes[0].kill()                   # a node crashes; the other two carry on

NATS implements MQTT 3.1.1 on JetStream: every node runs JetStream (its own store folder) and an
`mqtt` listener; the nodes are routed into one cluster, and the MQTT streams (sessions, QoS 1
messages, retained messages) and the sessions' consumers are kept on all three nodes
(`stream_replicas: 3`, `consumer_replicas: 3`), so losing one node loses nothing acknowledged.
`max_payload` is raised to fit the protocol's largest message (a 4 MiB frame upload).
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
import uuid
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, Self

from linefleet_core.wire import MAX_FRAME_BYTES
from tests.support.server import Cluster, ServerError, ServerProcess, free_port
from tests.support.waiting import until

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
MAX_PAYLOAD = MAX_FRAME_BYTES + 1024 * 1024


class NatsError(ServerError):
    pass


def available() -> bool:
    return Path(NATS_SERVER).exists()


class NatsNode(ServerProcess):
    """One `nats-server`; `port` is its MQTT listener (the one linefleet talks to)."""

    name = "nats-server"
    log_name = "nats.log"
    error = NatsError

    def __init__(self, workdir: Path, node: str, *, replicas: int = 1) -> None:
        super().__init__(workdir)
        self.node = node
        self.replicas = replicas
        self.client_port = free_port()
        self.route_port = free_port()
        self.http_port = free_port()
        self.routes: list[int] = []  # the other nodes' route ports
        self.config_path = workdir / "nats.conf"

    def config_text(self) -> str:
        lines = [
            f"server_name: {self.node}",
            f"listen: {self.host}:{self.client_port}",
            f"http: {self.host}:{self.http_port}",
            f"max_payload: {MAX_PAYLOAD}",
            f'jetstream {{ store_dir: "{self.workdir / "jetstream"}" }}',
        ]
        if self.routes:
            routes = ", ".join(f"nats-route://{self.host}:{p}" for p in self.routes)
            lines.append(
                f"cluster {{ name: linefleet, listen: {self.host}:{self.route_port}, "
                f"routes: [{routes}] }}"
            )
        lines.append(
            f"mqtt {{ listen: {self.host}:{self.port}, "
            f"stream_replicas: {self.replicas}, consumer_replicas: {self.replicas} }}"
        )
        return "\n".join(lines) + "\n"

    def prepare(self) -> None:
        self.config_path.write_text(self.config_text(), encoding="utf-8")

    def command(self) -> list[str]:
        return [NATS_SERVER, "-c", str(self.config_path)]

    def monitor(self, path: str) -> Any:
        """A JSON page of the node's monitoring endpoint (`/jsz?...`, `/routez`)."""
        url = f"http://{self.host}:{self.http_port}{path}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)


class GeneratedNats(ServerProcess):
    """nats-server on a configuration `linefleet broker config --engine nats` wrote; `port` is
    the MQTT listener it names."""

    name = "nats-server"
    log_name = "nats.log"
    error = NatsError

    def __init__(self, workdir: Path, config: Path, port: int) -> None:
        super().__init__(workdir, port=port)
        self.config = config

    def command(self) -> list[str]:
        return [NATS_SERVER, "-c", str(self.config)]


class NatsCluster(Cluster[NatsNode]):
    """Three (or `size`) routed NATS nodes with JetStream and MQTT, replicas on every node."""

    def __init__(self, workdir: Path, size: int = 3) -> None:
        self.workdir = workdir
        self.nodes = [NatsNode(workdir / f"n{i}", f"n{i}", replicas=size) for i in range(size)]
        self._route()

    name = "nats-cluster"
    attempts = 3
    """Starts tried: a port found free can be taken by another process (another test's broker,
    a RabbitMQ node) before nats-server binds it; it then exits 'address already in use'."""

    def _route(self) -> None:
        for node in self.nodes:
            node.routes = [other.route_port for other in self.nodes if other is not node]

    def start(self, timeout: float = 60.0) -> Self:
        for attempt in range(1, self.attempts + 1):
            try:
                for node in self.nodes:
                    node.start()
                break
            except NatsError as exc:
                if "address already in use" not in str(exc) or attempt == self.attempts:
                    raise
                self.stop()
                for node in self.nodes:  # new ports, and no state from the failed start
                    node.port, node.client_port = free_port(), free_port()
                    node.route_port, node.http_port = free_port(), free_port()
                    shutil.rmtree(node.workdir / "jetstream", ignore_errors=True)
                self._route()
        self.wait_ready(range(len(self.nodes)), timeout)
        return self

    def wait_ready(self, indexes: Sequence[int] | range, timeout: float = 60.0) -> None:
        """Until a persistent MQTT session can be opened on each of those nodes: the JetStream
        meta leader is elected and the MQTT streams exist (a fresh cluster needs seconds)."""
        deadline = time.monotonic() + timeout
        for index in indexes:
            node = self.nodes[index]
            left = max(0.0, deadline - time.monotonic())
            if not until(partial(_session_opens, node.host, node.port), left, 0.2):
                raise NatsError(
                    f"NATS node {node.node} accepted no MQTT session in {timeout}s:\n"
                    f"{node.log()[-2000:]}"
                )

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def log(self) -> str:
        return "\n".join(f"--- {n.node}\n{n.log()[-3000:]}" for n in self.nodes)

    def stream_replicas(self) -> dict[str, int]:
        """The MQTT streams and their configured replica counts, as the cluster reports."""
        for node in self.nodes:
            if not node.running:
                continue
            page = node.monitor("/jsz?accounts=true&streams=true&config=true")
            return {
                stream["name"]: stream["config"]["num_replicas"]
                for account in page.get("account_details", [])
                for stream in account.get("stream_detail", [])
            }
        return {}


def _session_opens(host: str, port: int) -> bool:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"ready-{uuid.uuid4().hex[:8]}", clean_session=False
    )
    try:
        client.connect(host, port, keepalive=10)
    except OSError:
        return False
    outcome: list[bool] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: outcome.append(not reason.is_failure)
    deadline = time.monotonic() + 6.0
    while not outcome and time.monotonic() < deadline:
        if client.loop(timeout=0.1) != mqtt.MQTT_ERR_SUCCESS:
            break
    client.disconnect()  # the few sessions these probes leave behind are harmless
    return bool(outcome and outcome[0])
