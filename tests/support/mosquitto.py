"""A real Mosquitto for tests: free loopback port, temp config and persistence, start/stop/kill.

    with Mosquitto(tmp_path / "broker") as broker:
        client.connect(broker.host, broker.port)

`max_queued_messages 0` and `max_inflight_messages 0` are always set (Mosquitto's default
queue of 1,000 silently drops retained backlogs of a large fleet). Extra configuration (ACL,
password file, bridges) goes in through the constructor; `restart()` keeps the persistence
directory and the port, so retained messages and persistent sessions survive it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class BrokerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class Mosquitto:
    """One Mosquitto process bound to 127.0.0.1 with its own folder (config, data, log)."""

    host = "127.0.0.1"

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        allow_anonymous: bool = True,
        acl_file: Path | None = None,
        password_file: Path | None = None,
        extra_config: str = "",
        autosave_interval: int = 1,
        config: str | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.allow_anonymous = allow_anonymous
        self.acl_file = acl_file
        self.password_file = password_file
        self.extra_config = extra_config
        self.autosave_interval = autosave_interval
        self.config = config  # a complete config (e.g. a generated one) used instead of ours
        self.process: subprocess.Popen[bytes] | None = None
        self.data_dir = workdir / "data"
        self.config_path = workdir / "mosquitto.conf"
        self.log_path = workdir / "mosquitto.log"

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def config_text(self) -> str:
        if self.config is not None:
            return self.config + ("user root\n" if os.geteuid() == 0 else "")
        lines = [
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            "persistence true",
            f"persistence_location {self.data_dir}/",
            f"autosave_interval {self.autosave_interval}",
            "max_queued_messages 0",
            "max_inflight_messages 0",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # stay root: our temp folders are not the mosquitto user's
        if self.acl_file is not None:
            lines.append(f"acl_file {self.acl_file}")
        if self.password_file is not None:
            lines.append(f"password_file {self.password_file}")
        return "\n".join(lines) + "\n" + self.extra_config + "\n"

    def start(self, timeout: float = 10.0) -> Mosquitto:
        if self.process is not None and self.process.poll() is None:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text(), encoding="utf-8")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerError(
                    f"mosquitto exited with {self.process.returncode}:\n{self.log()[-2000:]}"
                )
            if accepts(self.host, self.port):
                return self
            time.sleep(0.02)
        self.kill()
        raise BrokerError(f"mosquitto did not accept connections in {timeout}s:\n{self.log()}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: Mosquitto saves its persistence database and exits."""
        self._signal(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL: a crash; only what the last autosave wrote survives."""
        self._signal(signal.SIGKILL, 10.0)

    def restart(self, timeout: float = 10.0) -> Mosquitto:
        self.stop()
        return self.start(timeout)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def _signal(self, sig: signal.Signals, timeout: float) -> None:
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.process = None
        deadline = time.monotonic() + timeout  # the port is free once nothing accepts on it
        while accepts(self.host, self.port) and time.monotonic() < deadline:
            time.sleep(0.02)

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def bridge_config(
    name: str, remote: Mosquitto, topics: list[tuple[str, str, int]], *, cleansession: bool = False
) -> str:
    """A `connection` block bridging to `remote`; `topics` holds (pattern, direction, qos)."""
    lines = [
        f"connection {name}",
        f"address {remote.host}:{remote.port}",
        f"cleansession {'true' if cleansession else 'false'}",
        f"local_clientid linefleet-bridge-{name}-local",
        f"remote_clientid linefleet-bridge-{name}",
        "restart_timeout 1 2",
        "try_private true",
    ]
    lines += [f"topic {pattern} {direction} {qos}" for pattern, direction, qos in topics]
    return "\n".join(lines) + "\n"


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A running broker for one test (import this name into a conftest to use it)."""
    broker = Mosquitto(tmp_path / "mosquitto").start()
    try:
        yield broker
    finally:
        broker.stop()
