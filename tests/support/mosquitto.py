"""A real Mosquitto for tests: free loopback port, temp config and persistence, start/stop/kill.

    with Mosquitto(tmp_path / "broker") as broker:
        client.connect(broker.host, broker.port)

The configuration is `linefleet broker config`'s generator (`reconciler.broker.config_text`)
in its anonymous loopback form, so tests run the options the fleet's broker runs (queue limits
off, packet size); extra configuration (ACL, password file, bridges) goes in through the
constructor. A complete generated config can be passed as `config`. Run as root, the broker
stays root (our temp folders are not the mosquitto user's) unless `drop_root=True`.
`stop()` is SIGTERM (Mosquitto saves its persistence database), `kill()` a crash (only what the
last autosave wrote survives). `restart()` keeps the persistence directory and the port, so
retained messages and persistent sessions survive it. The process skeleton is
`tests.support.server.ServerProcess`.
"""

from __future__ import annotations

import os
import pwd
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import ServerError, ServerProcess, accepts, free_port

__all__ = ["BrokerError", "Mosquitto", "accepts", "bridge_config", "free_port", "mosquitto"]

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class BrokerError(ServerError):
    pass


class Mosquitto(ServerProcess):
    """One Mosquitto process bound to 127.0.0.1 with its own folder (config, data, log)."""

    name = "mosquitto"
    error = BrokerError
    log_name = "mosquitto.log"

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
        super().__init__(workdir, port=port)
        self.allow_anonymous = allow_anonymous
        self.acl_file = acl_file
        self.password_file = password_file
        self.extra_config = extra_config
        self.autosave_interval = autosave_interval
        self.config = config  # a complete config (e.g. a generated one) used instead of ours
        self.drop_root = drop_root  # root: let Mosquitto drop to its `user` as in production
        self.run_as = run_as  # start the process as this user (root only)
        self.data_dir = workdir / "data"
        self.config_path = workdir / "mosquitto.conf"

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def config_text(self) -> str:
        from reconciler.broker import config_text, loopback

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
            loopback(
                str(self.workdir),
                str(self.data_dir),
                self.port,
                stay_root=stay_root,  # our temp folders are not the mosquitto user's
                autosave_interval=self.autosave_interval,
                extra=tuple(extra),
            )
        )
        if not self.allow_anonymous:
            text = text.replace("\nallow_anonymous true\n", "\nallow_anonymous false\n")
        return text + self.extra_config + "\n"

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text(), encoding="utf-8")

    def command(self) -> list[str]:
        return [MOSQUITTO, "-c", str(self.config_path)]

    def popen_options(self) -> dict[str, Any]:
        if self.run_as is None:
            return {}
        entry = pwd.getpwnam(self.run_as)  # that user's own uid, primary group and nothing else
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


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
