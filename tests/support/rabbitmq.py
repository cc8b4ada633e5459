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
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any, Self

from tests.support.server import ServerError, ServerProcess, free_port

RABBITMQ_SERVER = os.environ.get(
    "LINEFLEET_RABBITMQ_SERVER", "/usr/lib/rabbitmq/bin/rabbitmq-server"
)
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

    def __init__(self, workdir: Path, *, keep_retained: bool = True) -> None:
        super().__init__(workdir)
        self.keep_retained = keep_retained
        """False: the plugin's no-op retained store (a broker that keeps no retained messages)."""
        self.config: str | None = None
        """rabbitmq.conf to boot with instead of ours (e.g. `broker config --engine rabbitmq`'s,
        made for `port` and `amqp_port`)."""
        self.amqp_port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
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
            cookie.write_text(os.urandom(16).hex(), encoding="utf-8")
            cookie.chmod(0o400)

    def _write_config(self) -> None:
        (self.workdir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {self.host}:{self.amqp_port}\n"
            f"mqtt.listeners.tcp.default = {self.host}:{self.port}\n"
            "mqtt.allow_anonymous = true\n"
            "loopback_users = none\n"
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
        if self.epmd is None or self.epmd.poll() is not None:
            with (self.workdir / "epmd.log").open("ab") as log:
                self.epmd = subprocess.Popen(
                    [EPMD, "-port", str(self.epmd_port), "-address", self.host],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
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
        if self.epmd is not None and self.epmd.poll() is None:
            self.epmd.terminate()
            self.epmd.wait(10)
        self.epmd = None

    def log(self) -> str:
        own = super().log()
        node_log = self.workdir / "log" / f"{self.node}.log"
        try:
            return own + node_log.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return own
