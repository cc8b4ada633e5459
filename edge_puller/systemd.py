"""Running under systemd: `sd_notify` over `$NOTIFY_SOCKET` (no dependency), a watchdog fed only
while every loop makes progress, and the unit file `linefleet edge install-service` writes.

`notify("READY=1")` sends one datagram to the socket systemd gives a `Type=notify` service
(a path, or `@name` for the abstract namespace); without `$NOTIFY_SOCKET` it does nothing.
`Watchdog` pets systemd (`WATCHDOG=1`) at half of `$WATCHDOG_USEC`, but only while each loop
it watches (the convergence loop, every inspection worker) has called `alive(name)` within the
watchdog period: a hung camera or inference loop stops the petting and systemd restarts the
agent (`Restart=on-failure` with `WatchdogSec=`).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


def notify(message: str, environ: dict[str, str] | None = None) -> bool:
    """Send `message` to systemd's notify socket; False when not run by systemd."""
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), address)
    return True


def watchdog_seconds(environ: dict[str, str] | None = None) -> float | None:
    """systemd's watchdog period (`$WATCHDOG_USEC`), if it is meant for this process."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) <= 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1_000_000


class Watchdog:
    """Pets systemd while every registered loop is alive."""

    def __init__(
        self,
        period: float,
        send: Callable[[str], object] = notify,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.period = period
        self.send = send
        self.clock = clock
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def alive(self, name: str) -> None:
        with self._lock:
            self._seen[name] = self.clock()

    def stalled(self) -> list[str]:
        now = self.clock()
        with self._lock:
            return sorted(n for n, t in self._seen.items() if now - t > self.period)

    def pet(self) -> bool:
        """Send `WATCHDOG=1` unless a loop stalled; True if sent."""
        if self.stalled():
            return False
        self.send("WATCHDOG=1")
        return True

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.period / 2):
            self.pet()


@dataclass(frozen=True)
class UnitOptions:
    site: str
    device: str
    broker: str
    sources: Path
    trust_keys: Path
    state_dir: Path = Path("/var/lib/linefleet/edge")
    executable: str = "/usr/local/bin/linefleet"
    artifact_roots: tuple[Path, ...] = ()
    user: str = "linefleet"
    watchdog_seconds: int = 30


def unit_text(o: UnitOptions) -> str:
    """The systemd unit of the edge agent (journald logs, state under /var/lib)."""
    args = [
        o.executable, "edge", "run", "--device", f"{o.site}/{o.device}", "--broker", o.broker,
        "--state-dir", str(o.state_dir), "--sources", str(o.sources),
        "--trust-key", str(o.trust_keys), "--results", str(o.state_dir / "results.jsonl"),
    ]  # fmt: skip
    for root in o.artifact_roots:
        args += ["--artifact-root", str(root)]
    state_name = (
        o.state_dir.relative_to("/var/lib") if o.state_dir.is_relative_to("/var/lib") else None
    )
    lines = [
        "[Unit]",
        f"Description=linefleet edge agent ({o.site}/{o.device})",
        "Wants=network-online.target",
        "After=network-online.target",
        "StartLimitIntervalSec=0",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={' '.join(args)}",
        "Restart=on-failure",
        "RestartSec=5",
        f"WatchdogSec={o.watchdog_seconds}",
        "TimeoutStopSec=30",
        "KillSignal=SIGTERM",
        f"User={o.user}",
        f"Group={o.user}",
        "SupplementaryGroups=video",
        *([f"StateDirectory={state_name}", "StateDirectoryMode=0750"] if state_name else []),
        "StandardOutput=journal",
        "StandardError=journal",
        "SyslogIdentifier=linefleet-edge",
        "Environment=PYTHONUNBUFFERED=1",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        f"ReadWritePaths={o.state_dir}",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)
