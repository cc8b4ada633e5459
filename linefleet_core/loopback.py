"""Throw-away servers on 127.0.0.1 (the demo's broker and registries, every real server a test
or a benchmark starts): a port to give one, and whether it accepts connections yet.

No component needs this; it lives in the contract package because the demo (in the CLI) and
the tests (outside every package) both start such servers, and this is the one place both may
import. Standard library only.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

PORTS_FROM = 20_000
"""`free_port` chooses between this port and the first the system hands to outgoing
connections (`ip_local_port_range`)."""
_given: set[int] = set()
"""Ports this process was given: never given twice (a server may not have bound it yet)."""


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 right now (also: a port to find closed).

    Chosen at random below the system's ephemeral range: a port from that range (what binding
    port 0 gives) can be handed to any outgoing connection between this check and the server's
    own bind, and a test run makes thousands (seen: RabbitMQ failing to start, `eaddrinuse`).
    Where no such range is known, or it leaves no room, the system chooses."""
    first = _ephemeral_first()
    for _ in range(100 if first - PORTS_FROM >= 1000 else 0):
        port = random.randrange(PORTS_FROM, first)
        if port in _given:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:  # in use (or lingering): another
                continue
            _given.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        chosen: int = s.getsockname()[1]
        return chosen


def _ephemeral_first() -> int:
    """The first port of Linux's ephemeral range, else 0."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    """True when something accepts a TCP connection on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
