"""The skeleton every test server shares: one process on a free loopback port, its own folder.

A subclass says how to write its config (`write_config`), which command starts it
(`command`) and, if a listening port is not enough, when it is ready (`ready`); this base
starts it with its output in a log file, waits until it accepts connections (or reports why
it exited), and stops it with SIGTERM (`stop`) or SIGKILL (`kill`, a crash).

    class Thing(ServerProcess):
        name = "thing"
        def command(self) -> list[str]: ...
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self


class ServerError(RuntimeError):
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


class ServerProcess:
    """One server process bound to 127.0.0.1:`port`, with `workdir` for config, data and log."""

    host = "127.0.0.1"
    name = "server"
    log_name = "server.log"
    error: type[ServerError] = ServerError
    poll_interval = 0.02

    def __init__(self, workdir: Path, *, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / self.log_name

    # --- what a subclass says ---

    def command(self) -> list[str]:
        raise NotImplementedError

    def write_config(self) -> None:
        """Write the config files `command()` names (called before every start)."""

    def popen_options(self) -> dict[str, Any]:
        """More `subprocess.Popen` arguments (environment, user)."""
        return {}

    def ready(self) -> bool:
        """True once the server serves; by default, once it accepts connections on `port`."""
        return accepts(self.host, self.port)

    # --- the shared lifecycle ---

    def start(self, timeout: float = 10.0) -> Self:
        if self.running:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.write_config()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                **self.popen_options(),
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise self.error(f"{self.name} exited with {code}:\n{self.log()[-2000:]}")
            if self.ready():
                return self
            time.sleep(self.poll_interval)
        self.kill()
        raise self.error(f"{self.name} was not ready in {timeout}s:\n{self.log()[-2000:]}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: the server saves what it keeps and exits."""
        self._signal(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL: a crash; only what the server already wrote survives."""
        self._signal(signal.SIGKILL, 10.0)

    def restart(self, timeout: float = 10.0) -> Self:
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

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
