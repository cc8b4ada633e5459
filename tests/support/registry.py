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
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import pytest

from tests.support.server import ServerError, ServerProcess

DOCKER_REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"


class RegistryError(ServerError):
    pass


def available() -> bool:
    return Path(DOCKER_REGISTRY).exists()


class Registry(ServerProcess):
    name = "docker-registry"
    log_name = "registry.log"
    error = RegistryError
    poll_interval = 0.05

    def __init__(self, workdir: Path, *, port: int | None = None, config: str | None = None):
        super().__init__(workdir, port=port)
        self.config = config
        self.data_dir = workdir / "data"
        self.config_path = workdir / "config.yml"

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

    def write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text(), encoding="utf-8")

    def command(self) -> list[str]:
        return [DOCKER_REGISTRY, "serve", str(self.config_path)]

    def start(self, timeout: float = 15.0) -> Self:
        if not available():
            pytest.skip("docker-registry is not installed (bash .ci/install-docker-registry)")
        return super().start(timeout)

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


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    """A running central registry for one test (import this name into a conftest to use it)."""
    reg = Registry(tmp_path / "registry").start()
    try:
        yield reg
    finally:
        reg.stop()
