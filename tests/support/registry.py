"""A real OCI registry for tests (CNCF Distribution, Debian's `docker-registry`).

    with Registry(tmp_path / "central") as central:
        push_file(model, f"oci://{central.address}/models/surface")

Free loopback port, storage in a temp folder, JSON access log in `registry.log` (so a test can
tell who fetched what: `requests()`). A complete config (for example one written by
`linefleet mirror config`) goes in through `config=`; its `http.addr` must then name `port`.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from tests.support.mosquitto import accepts, free_port

DOCKER_REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"


class RegistryError(RuntimeError):
    pass


def available() -> bool:
    return Path(DOCKER_REGISTRY).exists()


class Registry:
    host = "127.0.0.1"

    def __init__(self, workdir: Path, *, port: int | None = None, config: str | None = None):
        self.workdir = workdir
        self.port = port or free_port()
        self.config = config
        self.data_dir = workdir / "data"
        self.config_path = workdir / "config.yml"
        self.log_path = workdir / "registry.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """`HOST:PORT`, as written in `oci://` references."""
        return f"{self.host}:{self.port}"

    def config_text(self) -> str:
        if self.config is not None:
            return self.config
        return (
            "version: 0.1\n"
            "log:\n  level: info\n  formatter: json\n"
            "storage:\n"
            f"  filesystem:\n    rootdirectory: {self.data_dir}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.address}\n"
        )

    def start(self, timeout: float = 15.0) -> Registry:
        if not available():
            pytest.skip("docker-registry is not installed (bash .ci/install-docker-registry)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text(), encoding="utf-8")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [DOCKER_REGISTRY, "serve", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RegistryError(f"docker-registry exited:\n{self.log()[-2000:]}")
            if accepts(self.host, self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise RegistryError(f"docker-registry did not listen in {timeout}s:\n{self.log()}")

    def stop(self, timeout: float = 10.0) -> None:
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.process = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def requests(self) -> list[dict[str, Any]]:
        """The access log's request entries (method, uri, user agent, status, bytes)."""
        found = []
        for line in self.log().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and "http.request.uri" in entry:
                found.append(entry)
        return found

    def __enter__(self) -> Registry:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    """A running central registry for one test (import this name into a conftest to use it)."""
    reg = Registry(tmp_path / "registry").start()
    try:
        yield reg
    finally:
        reg.stop()
