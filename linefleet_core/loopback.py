"""Throw-away servers on 127.0.0.1 (the demo's broker and registries, every real server a test
or a benchmark starts): a port to give one, and whether it accepts connections yet.

No component needs this; it lives in the contract package because the demo (in the CLI) and
the tests (outside every package) both start such servers, and this is the one place both may
import. Standard library only.
"""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 right now (also: a port to find closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    """True when something accepts a TCP connection on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
