"""`linefleet_core.loopback.free_port`: a port nothing listens on, outside the range the
system hands to outgoing connections (where a port could be taken before the server binds)."""

from __future__ import annotations

import socket
from pathlib import Path

from linefleet_core.loopback import PORTS_FROM, accepts, free_port


def test_a_free_port_is_below_the_ephemeral_range_and_can_be_bound() -> None:
    first = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {free_port() for _ in range(50)}
    assert all(PORTS_FROM <= port < first for port in ports)
    assert len(ports) > 40  # at random, not one port over and over
    for port in list(ports)[:5]:
        assert not accepts("127.0.0.1", port)
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_a_port_in_use_is_never_given() -> None:
    taken = []
    try:
        for _ in range(200):  # listeners on many ports of the range: none is given
            s = socket.socket()
            s.bind(("127.0.0.1", free_port()))
            s.listen()
            taken.append(s)
        ports = {s.getsockname()[1] for s in taken}
        assert len(ports) == len(taken)
        assert all(free_port() not in ports for _ in range(200))
    finally:
        for s in taken:
            s.close()


def test_a_port_is_given_once_to_a_process() -> None:
    """Servers started together (a cluster's nodes, a node's several listeners) take their
    ports before any binds one: the same port twice would make one of them fail."""
    ports = [free_port() for _ in range(500)]
    assert len(set(ports)) == len(ports)
