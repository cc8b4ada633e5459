"""The skeleton every real server a test starts shares: a free loopback port, a work folder,
start and wait until it answers, stop, and its log in every error.

A server is a subclass that says how it runs:

    class Thing(ServerProcess):
        name = "thing"                          # in errors: "thing exited with 1: <log tail>"
        error = ThingError                      # raised on failure (a ServerError subclass)

        def command(self) -> list[str]:         # the argv; `prepare()` writes its config first
            return ["thing", "--port", str(self.port)]

    with Thing(tmp_path / "thing") as thing:    # or Thing(None): a temp folder, removed on stop
        connect(thing.host, thing.port)

Hooks, all optional: `prepare()` (write config; runs before each start), `popen_options()`
(extra `subprocess.Popen` arguments, e.g. the user to run as), `ready()` (default: the port
accepts TCP), `unavailable()` (a reason to skip: the binary is missing), `stop_signal`.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Generic, Self, TypeVar

import pytest

from linefleet_core.loopback import accepts, free_port
from tests.support.waiting import until

__all__ = ["Cluster", "ServerError", "ServerProcess", "accepts", "free_port"]

LOG_TAIL = 2000
"""Characters of the server's log quoted in an error."""


class ServerError(RuntimeError):
    """A test server did not start; the message ends with its log."""


class Startable:
    """`with thing:` starts it and stops it, whatever happens inside."""

    def start(self, timeout: float = 60.0) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ServerProcess(Startable):
    """One server process on 127.0.0.1:`port` with its own folder and log file."""

    name: ClassVar[str] = "server"
    error: ClassVar[type[ServerError]] = ServerError
    log_name: ClassVar[str] = "server.log"
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    poll_interval: ClassVar[float] = 0.02
    host = "127.0.0.1"

    def __init__(self, workdir: Path | None, *, port: int | None = None) -> None:
        self._own_workdir = workdir is None  # a temp folder made on start, removed on stop
        self._workdir = workdir
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    # -- what a subclass says ------------------------------------------------------------------
    def command(self) -> list[str]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Write what the server reads (config, data folder) into `workdir`."""

    def popen_options(self) -> dict[str, Any]:
        return {}

    def ready(self) -> bool:
        return accepts(self.host, self.port)

    def unavailable(self) -> str:
        """Why this server cannot run here ("" when it can); `start()` skips the test then."""
        return ""

    # -- the shared part ------------------------------------------------------------------------
    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise self.error(f"{self.name}: start() first (its folder is made on start)")
        return self._workdir

    @property
    def log_path(self) -> Path:
        return self.workdir / self.log_name

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 15.0) -> Self:
        if self.running:
            return self
        if reason := self.unavailable():
            pytest.skip(reason)
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix=f"linefleet-{self.name}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self.prepare()
        except BaseException:
            self._remove_workdir()
            raise
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
            code = self.process.poll()
            if code is not None:
                self.process = None
                raise self.failure(f"{self.name} exited with {code}")
            if self.ready():
                return self
            time.sleep(self.poll_interval)
        self._signal(signal.SIGKILL, 10.0, keep_workdir=True)
        raise self.failure(f"{self.name} did not answer in {timeout}s")

    def failure(self, what: str) -> ServerError:
        """`error` with the log's tail (a temp folder this server made is removed after reading)."""
        text = self.log()[-LOG_TAIL:]
        self._remove_workdir()
        return self.error(f"{what}:\n{text}")

    def stop(self, timeout: float = 10.0) -> None:
        """`stop_signal` (a clean shutdown), SIGKILL after `timeout`."""
        self._signal(self.stop_signal, timeout)

    def kill(self) -> None:
        """SIGKILL: a crash."""
        self._signal(signal.SIGKILL, 10.0)

    def restart(self, timeout: float = 15.0) -> Self:
        """Stop and start on the same port and folder (a temp folder is made anew)."""
        self.stop()
        return self.start(timeout)

    def log(self) -> str:
        if self._workdir is None:
            return ""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def _signal(self, sig: signal.Signals, timeout: float, *, keep_workdir: bool = False) -> None:
        proc = self.process
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(sig)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            self.process = None
            # the port is free once nothing accepts on it
            until(lambda: not accepts(self.host, self.port), timeout, self.poll_interval)
        if not keep_workdir:
            self._remove_workdir()

    def _remove_workdir(self) -> None:
        if self._own_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None


Node = TypeVar("Node", bound=ServerProcess)


class Cluster(Startable, Generic[Node]):
    """Several server nodes serving as one (`nodes`; a subclass starts and stops them):
    `host`/`port` are node 0's, `url` lists every node for clients that fail over."""

    nodes: list[Node]

    @property
    def host(self) -> str:
        return self.nodes[0].host

    @property
    def port(self) -> int:
        return self.nodes[0].port

    @property
    def url(self) -> str:
        """Every node, first the first: a client fails over along the list."""
        return self.url_from(0)

    def url_from(self, index: int) -> str:
        """Every node, starting at node `index` (the one a client connects to first)."""
        order = [*self.nodes[index:], *self.nodes[:index]]
        return "mqtt://" + ",".join(f"{n.host}:{n.port}" for n in order)
