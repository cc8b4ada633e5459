"""A private RabbitMQ node with the `rabbitmq_mqtt` plugin for tests.

    with RabbitMQ(tmp_path / "rabbit") as rabbit:
        client.connect(rabbit.host, rabbit.port)  # MQTT 3.1.1

Nothing is shared with a RabbitMQ the machine may run: the node has its own name, its own
Erlang port mapper (`epmd` on a free port, started and stopped with it), its own distribution
port, its own cookie (`HOME` is its folder), its own database, logs, enabled-plugins file and
config, and listens on 127.0.0.1 only (AMQP and MQTT on free ports). The Debian wrapper
`/usr/sbin/rabbitmq-server` switches to the `rabbitmq` user; we run the real script under
`/usr/lib/rabbitmq/bin/` as whoever runs the tests (root included). A node needs ~10 s to
boot on a quiet machine (minutes on a loaded one), so tests share one per session.

    with RabbitCluster(tmp_path / "rabbits") as cluster:   # three nodes, one cluster
        cluster.url_from(1)                                # node 1 first, then the others

A cluster's nodes share one private `epmd` and one cookie (so they find and trust each other
and nothing else); node 0 boots alone, the others join it at their first boot
(`classic_config` peer discovery naming node 0).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

from tests.support.server import Cluster, ServerError, ServerProcess, free_port

RABBITMQ_SERVER = os.environ.get(
    "LINEFLEET_RABBITMQ_SERVER", "/usr/lib/rabbitmq/bin/rabbitmq-server"
)
RABBITMQCTL = str(Path(RABBITMQ_SERVER).with_name("rabbitmqctl"))
EPMD = shutil.which("epmd") or "/usr/bin/epmd"


class RabbitError(ServerError):
    pass


def available() -> bool:
    return Path(RABBITMQ_SERVER).exists() and Path(EPMD).exists()


class RabbitMQ(ServerProcess):
    """One RabbitMQ node; `port` is its MQTT listener."""

    name = "rabbitmq-server"
    log_name = "rabbitmq.out"
    error = RabbitError
    poll_interval = 0.2

    def __init__(
        self,
        workdir: Path,
        *,
        keep_retained: bool = True,
        epmd_port: int | None = None,
        cookie: str | None = None,
        join: Sequence[str] = (),
    ) -> None:
        super().__init__(workdir)
        self.keep_retained = keep_retained
        """False: the plugin's no-op retained store (a broker that keeps no retained messages)."""
        self.config: str | None = None
        """rabbitmq.conf to boot with instead of ours (e.g. `broker config --engine rabbitmq`'s,
        made for `port` and `amqp_port`)."""
        self.amqp_port = free_port()
        self.dist_port = free_port()
        self.own_epmd = epmd_port is None
        """False: a cluster's `epmd`, started and stopped by the cluster (`RabbitCluster`)."""
        self.epmd_port = free_port() if epmd_port is None else epmd_port
        self.cookie = cookie or os.urandom(16).hex()
        self.join = list(join)
        """Nodes to join at the first boot (a cluster's node 0)."""
        self.node = f"linefleet-{self.port}@localhost"
        self.epmd: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def prepare(self) -> None:
        w = self.workdir
        (w / "enabled_plugins").write_text("[rabbitmq_mqtt].\n", encoding="utf-8")
        if self.config is not None:
            (w / "rabbitmq.conf").write_text(self.config, encoding="utf-8")
        else:
            self._write_config()
        cookie = w / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(self.cookie, encoding="utf-8")
            cookie.chmod(0o400)

    def _write_config(self) -> None:
        (self.workdir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {self.host}:{self.amqp_port}\n"
            f"mqtt.listeners.tcp.default = {self.host}:{self.port}\n"
            "mqtt.allow_anonymous = true\n"
            "loopback_users = none\n"
            + ("cluster_formation.peer_discovery_backend = classic_config\n" if self.join else "")
            + "".join(
                f"cluster_formation.classic_config.nodes.{i} = {peer}\n"
                for i, peer in enumerate(self.join, 1)
            )
            + (
                ""
                if self.keep_retained
                else "mqtt.retained_message_store = rabbit_mqtt_retained_msg_store_noop\n"
            ),
            encoding="utf-8",
        )

    def environment(self) -> dict[str, str]:
        w = self.workdir
        return {
            **os.environ,
            "HOME": str(w),  # the private Erlang cookie
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": self.host,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": self.host,
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(w / "mnesia"),
            "RABBITMQ_LOG_BASE": str(w / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(w / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(w / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(w / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(w / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(w / "rabbitmq.pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def command(self) -> list[str]:
        return [RABBITMQ_SERVER]

    def popen_options(self) -> dict[str, Any]:
        # its own process group: stop and kill reach the Erlang VM and its helpers
        return {"env": self.environment(), "cwd": str(self.workdir), "start_new_session": True}

    def start(self, timeout: float = 240.0) -> Self:
        if self.running:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.own_epmd and (self.epmd is None or self.epmd.poll() is not None):
            self.epmd = start_epmd(self.workdir, self.epmd_port)
        try:
            return super().start(timeout)
        except BaseException:
            self._stop_epmd()
            raise

    def stop(self, timeout: float = 30.0) -> None:
        super().stop(timeout)
        self._stop_epmd()

    def _signal(self, sig: signal.Signals, timeout: float, *, keep_workdir: bool = False) -> None:
        proc = self.process
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)  # the group we started: the VM and its helpers
        super()._signal(sig, timeout, keep_workdir=keep_workdir)

    def _stop_epmd(self) -> None:
        stop_epmd(self.epmd)
        self.epmd = None

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """`rabbitmqctl ARGS` against this node; its output (a `RabbitError` if it fails)."""
        done = subprocess.run(
            [RABBITMQCTL, "-n", self.node, *args],
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RabbitError(f"rabbitmqctl {' '.join(args)}: {done.stdout}{done.stderr}")
        return done.stdout

    def log(self) -> str:
        own = super().log()
        node_log = self.workdir / "log" / f"{self.node}.log"
        try:
            return own + node_log.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return own


def start_epmd(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    """A private Erlang port mapper on 127.0.0.1:`port`."""
    with (workdir / "epmd.log").open("ab") as log:
        return subprocess.Popen(
            [EPMD, "-port", str(port), "-address", RabbitMQ.host],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def stop_epmd(epmd: subprocess.Popen[bytes] | None) -> None:
    if epmd is not None and epmd.poll() is None:
        epmd.terminate()
        epmd.wait(10)


class RabbitCluster(Cluster[RabbitMQ]):
    """`size` RabbitMQ nodes with `rabbitmq_mqtt`, clustered; `nodes[i].port` is node i's MQTT
    listener. Node 0 boots first, the others then join it."""

    name = "rabbitmq-cluster"

    def __init__(self, workdir: Path, size: int = 3) -> None:
        self.workdir = workdir
        self.epmd_port = free_port()
        self.epmd: subprocess.Popen[bytes] | None = None
        cookie = os.urandom(16).hex()
        first = RabbitMQ(workdir / "n0", epmd_port=self.epmd_port, cookie=cookie)
        self.nodes = [first] + [
            RabbitMQ(workdir / f"n{i}", epmd_port=self.epmd_port, cookie=cookie, join=[first.node])
            for i in range(1, size)
        ]

    def start(self, timeout: float = 240.0) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.epmd is None or self.epmd.poll() is not None:
            self.epmd = start_epmd(self.workdir, self.epmd_port)
        try:
            for node in self.nodes:
                node.start(timeout)
            self.wait_clustered(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def running_nodes(self) -> set[str]:
        """The cluster's running nodes, as the first running node sees them."""
        for node in self.nodes:
            if node.running:
                out = node.ctl("eval", "rabbit_nodes:all_running().")
                return {n for n in self._node_names() if n in out}
        return set()

    def wait_clustered(self, timeout: float = 60.0) -> None:
        want = {n.node for n in self.nodes if n.running}
        deadline = time.monotonic() + timeout
        while self.running_nodes() != want:
            if time.monotonic() > deadline:
                raise RabbitError(
                    f"RabbitMQ nodes {sorted(want)} did not form one cluster in {timeout}s "
                    f"(running: {sorted(self.running_nodes())}):\n{self.log()}"
                )
            time.sleep(0.5)

    def _node_names(self) -> list[str]:
        return [n.node for n in self.nodes]

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
        stop_epmd(self.epmd)
        self.epmd = None

    def log(self) -> str:
        return "\n".join(f"--- {n.node}\n{n.log()[-3000:]}" for n in self.nodes)
