"""A real Mosquitto for tests: free loopback port, temp config and persistence, start/stop/kill.

    with Mosquitto(tmp_path / "broker") as broker:
        client.connect(broker.host, broker.port)

The configuration is `linefleet broker config`'s generator (`reconciler.broker.config_text`)
in its anonymous loopback form, so tests run the options the fleet's broker runs (queue limits
off, packet size); extra configuration (ACL, password file, bridges) goes in through the
constructor. A complete generated config can be passed as `config`. Run as root, the broker
stays root (our temp folders are not the mosquitto user's) unless `drop_root=True`.
`restart()` keeps the persistence directory and the port, so retained messages and persistent
sessions survive it.
"""

from __future__ import annotations

import os
import pwd
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
        drop_root: bool = False,
        run_as: str | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.allow_anonymous = allow_anonymous
        self.acl_file = acl_file
        self.password_file = password_file
        self.extra_config = extra_config
        self.autosave_interval = autosave_interval
        self.config = config  # a complete config (e.g. a generated one) used instead of ours
        self.drop_root = drop_root  # root: let Mosquitto drop to its `user` as in production
        self.run_as = run_as  # start the process as this user (root only)
        self.process: subprocess.Popen[bytes] | None = None
        self.data_dir = workdir / "data"
        self.config_path = workdir / "mosquitto.conf"
        self.log_path = workdir / "mosquitto.log"

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def config_text(self) -> str:
        from reconciler.broker import BrokerOptions, config_text

        stay_root = os.geteuid() == 0 and not self.drop_root and self.run_as is None
        if self.config is not None:
            if not stay_root:
                return self.config
            kept = [ln for ln in self.config.splitlines() if not ln.startswith("user ")]
            return "\n".join(kept) + "\nuser root\n"
        extra = ["log_type information"]
        if self.acl_file is not None:
            extra.append(f"acl_file {self.acl_file}")
        if self.password_file is not None:
            extra.append(f"password_file {self.password_file}")
        text = config_text(
            BrokerOptions(
                str(self.workdir),
                str(self.data_dir),
                self.port,
                self.host,
                anonymous=True,
                # stay root: our temp folders are not the mosquitto user's
                user="root" if stay_root else None,
                autosave_interval=self.autosave_interval,
                extra=tuple(extra),
            )
        )
        if not self.allow_anonymous:
            text = text.replace("\nallow_anonymous true\n", "\nallow_anonymous false\n")
        return text + self.extra_config + "\n"

    def start(self, timeout: float = 10.0) -> Mosquitto:
        if self.process is not None and self.process.poll() is None:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text(), encoding="utf-8")
        who: dict[str, object] = {}
        if self.run_as is not None:  # that user's own uid, primary group and nothing else
            entry = pwd.getpwnam(self.run_as)
            who = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # type: ignore[call-overload]
                [MOSQUITTO, "-c", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                **who,
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
