"""A retained snapshot read on a plain socket: a minimal, read-only MQTT 3.1.1 client.

`linefleet status` reads every device's retained desired, reported and online message (30,000
at 10,000 devices). Through paho each one costs its Python packet reader, a `MQTTMessage`, a
callback and a queue hand-off between threads (about 40 µs a message: a second of CPU at
10,000 devices). This reader does the same exchange as `linefleet_core.mqttsession.
retained_snapshot` with `qos=0` on one thread, parsing the broker's bytes in large reads:

CONNECT (clean session) → CONNACK; SUBSCRIBE the filters at QoS 0 → SUBACK; the retained
probe (QoS 1, retained) → PUBACK; SUBSCRIBE `linefleet/v1/_barrier/+`; the barrier (QoS 1) —
and every PUBLISH that arrives meanwhile is collected. The snapshot ends when the barrier comes
back (or `quiet` seconds pass with nothing arriving since the last barrier; a pause after which
messages were still arriving sends the barrier again), exactly as `collect_retained` decides.
A broker that does not hand retained messages to a wildcard is refused the same way
(`RetainedUnsupported`). Filters may be wildcards or exact topics.

It never publishes anything but the probe and the barrier, keeps no session and never
reconnects: a connection lost mid-read is a `TemporaryError` (exit 4), like a broker that
cannot be reached. TLS and credentials come from the `BrokerAddress` as for paho
(`BrokerAddress.configure`): the same CA, client certificate and host-name check.
`tests/integration/brokers/test_snapshot_raw.py` compares it with paho's reading on each engine.
"""

from __future__ import annotations

import socket
import ssl
import struct
import time
from collections.abc import Callable, Sequence

from linefleet_core.errors import PermanentError, TemporaryError
from linefleet_core.mqttsession import (
    BARRIER_ROOT,
    RETAINED_PROBE,
    Message,
    barrier_topic,
    wildcards_hide_retained,
)
from linefleet_core.mqtturl import BrokerAddress

CONNACK_REFUSALS = {
    1: "Unacceptable protocol version",
    2: "Identifier rejected",
    3: "Server unavailable",
    4: "Bad user name or password",
    5: "Not authorized",
}
KEEPALIVE = 60
READ_BYTES = 1 << 20
MAX_REMAINING = 268_435_455  # the largest Remaining Length MQTT 3.1.1 can encode


class ProtocolError(TemporaryError):
    """The broker sent bytes that are not MQTT 3.1.1 (or closed the connection)."""


def read_retained(
    address: BrokerAddress,
    topic_filter: str | Sequence[str],
    client_id: str,
    *,
    quiet: float = 0.5,
    limit: float = 30.0,
    timeout: float = 5.0,
    each: Callable[[Message], object] | None = None,
) -> dict[str, Message]:
    """Every retained message under the filter(s), by topic (a QoS 0 subscription in a clean
    session): what `retained_snapshot(..., qos=0)` returns, read without paho.

    `each` is called with every retained message as it is read (a topic that arrives twice is
    passed twice; the snapshot keeps the last), so the caller can work on the messages while
    the broker is still sending the rest."""
    filters = [topic_filter] if isinstance(topic_filter, str) else list(topic_filter)
    reader = _Reader(address, client_id, timeout, each)
    try:
        return reader.snapshot(filters, quiet, limit)
    finally:
        reader.close()


def _string(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack("!H", len(data)) + data


def _packet(first: int, body: bytes) -> bytes:
    length = len(body)
    head = bytearray([first])
    while True:
        digit, length = length & 0x7F, length >> 7
        head.append(digit | 0x80 if length else digit)
        if not length:
            return bytes(head) + body


def connect_packet(client_id: str, username: str | None, password: str | None) -> bytes:
    flags = 0x02  # clean session
    payload = _string(client_id)
    if username is not None:
        flags |= 0x80
        payload += _string(username)
        if password is not None:
            flags |= 0x40
            payload += _string(password)
    return _packet(
        0x10, _string("MQTT") + bytes([4, flags]) + struct.pack("!H", KEEPALIVE) + payload
    )


def subscribe_packet(packet_id: int, filters: Sequence[str]) -> bytes:
    body = struct.pack("!H", packet_id) + b"".join(_string(f) + b"\x00" for f in filters)
    return _packet(0x82, body)


def publish_packet(topic: str, payload: bytes, packet_id: int, *, retain: bool) -> bytes:
    """A QoS 1 PUBLISH."""
    return _packet(0x32 | retain, _string(topic) + struct.pack("!H", packet_id) + payload)


class _Reader:
    def __init__(
        self,
        address: BrokerAddress,
        client_id: str,
        timeout: float,
        each: Callable[[Message], object] | None = None,
    ) -> None:
        self.each = each
        self.address = address
        self.where = address.url
        self.sock = _open(address, timeout)
        self.buf = b""
        self.found: dict[str, Message] = {}
        self.barrier = barrier_topic(client_id)
        self.probed = False
        self.barrier_back = False
        self.arrived = 0  # messages (or bytes of one) since the last barrier was sent
        self.acks: set[int] = set()  # packet ids of PUBACKs and SUBACKs received
        self.subacks: dict[int, bytes] = {}
        self.connack: int | None = None
        self.last_sent = time.monotonic()
        self.next_id = 0
        self.closed = False
        self._send(connect_packet(client_id, address.username, address.password))
        self._until(lambda: self.connack is not None, timeout, "no CONNACK")
        if self.connack:
            reason = CONNACK_REFUSALS.get(self.connack, f"return code {self.connack}")
            raise PermanentError(f"broker {self.where} refused the connection: {reason}")
        self.timeout = timeout

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id

    def snapshot(self, filters: list[str], quiet: float, limit: float) -> dict[str, Message]:
        if filters:
            sub = self._id()
            self._send(subscribe_packet(sub, filters))
            self._until(lambda: sub in self.subacks, self.timeout, "no SUBACK")
            codes = self.subacks[sub]
            refused = [f"{f} (Failure)" for f, c in zip(filters, codes, strict=False) if c >= 0x80]
            if refused:
                raise TemporaryError(
                    f"broker {self.where} refused the subscription to {', '.join(refused)}",
                    delay=2.0,
                )
        probe = self._id()
        self._send(publish_packet(RETAINED_PROBE, b"1", probe, retain=True))
        self._until(lambda: probe in self.acks, limit, "the retained probe was not acknowledged")
        self._send(subscribe_packet(self._id(), [f"{BARRIER_ROOT}/+"]))
        self._send_barrier()
        end = time.monotonic() + limit
        while not self.barrier_back and (wait := min(quiet, end - time.monotonic())) > 0:
            if self._read(wait):
                continue
            if not self.arrived:
                break  # silent since the last barrier: nothing more is coming
            self._send_barrier()  # messages were still arriving: a pause, not the end
        self._send(b"\xe0\x00")  # DISCONNECT
        return self.found

    def _send_barrier(self) -> None:
        self._send(publish_packet(self.barrier, b"", self._id(), retain=False))
        self.arrived = 0

    def _send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise TemporaryError(
                f"broker {self.where}: connection lost: {exc}", delay=2.0
            ) from None
        self.last_sent = time.monotonic()

    def _lost(self, exc: OSError) -> TemporaryError:
        return TemporaryError(f"broker {self.where}: connection lost: {exc}", delay=2.0)

    def _until(self, done: Callable[[], bool], within: float, what: str) -> None:
        end = time.monotonic() + within
        while not done():
            left = end - time.monotonic()
            if left <= 0:
                raise TemporaryError(f"broker {self.where}: {what} within {within:g}s", delay=2.0)
            self._read(left)

    def _read(self, wait: float) -> bool:
        """Read what arrives within `wait` seconds and handle every whole packet; False when
        nothing arrived."""
        if time.monotonic() - self.last_sent > KEEPALIVE / 2:
            self._send(b"\xc0\x00")  # PINGREQ
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(READ_BYTES)
        except (TimeoutError, ssl.SSLWantReadError):
            return False
        except OSError as exc:
            raise TemporaryError(
                f"broker {self.where}: connection lost: {exc}", delay=2.0
            ) from None
        if not data:
            raise ProtocolError(
                f"broker {self.where} closed the connection during the read", delay=2.0
            )
        self.buf = self.buf + data if self.buf else data
        self.arrived += 1
        self._handle(time.time())
        return True

    def _handle(self, received: float) -> None:
        buf, pos, end = self.buf, 0, len(self.buf)
        found, barrier, root = self.found, self.barrier, f"{BARRIER_ROOT}/"
        while end - pos >= 2:
            first = buf[pos]
            index, length, shift = pos + 1, 0, 0
            while True:  # Remaining Length: 1-4 bytes, 7 bits each
                if index >= end:
                    self.buf = buf[pos:]
                    return
                digit = buf[index]
                index += 1
                length |= (digit & 0x7F) << shift
                if digit < 0x80:
                    break
                shift += 7
                if shift > 21:
                    raise ProtocolError(f"broker {self.where}: malformed packet length", delay=2.0)
            nxt = index + length
            if nxt > end:
                break
            kind = first >> 4
            if kind == 3:  # PUBLISH
                size = (buf[index] << 8) | buf[index + 1]
                start = index + 2 + size
                topic_bytes = buf[index + 2 : start]
                qos = (first >> 1) & 3
                if qos:
                    packet_id = buf[start : start + 2]
                    start += 2
                    self._send((b"\x40\x02" if qos == 1 else b"\x50\x02") + packet_id)
                pos = nxt
                try:
                    topic = topic_bytes.decode("utf-8")
                except UnicodeDecodeError:
                    continue  # no topic of ours
                if topic == barrier:
                    self._barrier()
                    if self.barrier_back:
                        self.buf = buf[pos:]
                        return
                elif topic == RETAINED_PROBE:
                    self.probed = self.probed or bool(first & 1)
                elif first & 1 and not topic.startswith(root):
                    found[topic] = message = Message(topic, buf[start:nxt], True, received)
                    if self.each is not None:
                        self.each(message)
                continue
            body = buf[index:nxt]
            if kind == 2:  # CONNACK
                self.connack = body[1] if len(body) == 2 else 255
            elif kind == 4 and len(body) == 2:  # PUBACK
                self.acks.add((body[0] << 8) | body[1])
            elif kind == 9 and len(body) >= 2:  # SUBACK
                self.subacks[(body[0] << 8) | body[1]] = body[2:]
            elif kind == 6 and len(body) == 2:  # PUBREL (of a QoS 2 delivery): PUBCOMP
                self._send(b"\x70\x02" + body)
            pos = nxt
        self.buf = buf[pos:]

    def _barrier(self) -> None:
        if not self.probed:
            raise wildcards_hide_retained(self.where)
        self.barrier_back = True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()


def _tls_context(address: BrokerAddress) -> ssl.SSLContext:
    """What `BrokerAddress.configure` gives paho: TLS 1.2+, the broker's certificate checked
    against `ca_file` (or the system's CAs) and its host name, a client certificate if set."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if address.cert_file is not None:
        context.load_cert_chain(address.cert_file, address.key_file)
    context.verify_mode = ssl.CERT_REQUIRED
    if address.ca_file is not None:
        context.load_verify_locations(address.ca_file)
    else:
        context.load_default_certs()
    return context


def _open(address: BrokerAddress, timeout: float) -> socket.socket:
    """A connection to the first node that answers."""
    failures = []
    for host, port in address.endpoints:
        try:
            sock = socket.create_connection((host, port), timeout)
        except OSError as exc:
            failures.append(f"{host}:{port}: {exc}" if address.others else str(exc))
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not address.tls:
            return sock
        try:
            return _tls_context(address).wrap_socket(sock, server_hostname=host)
        except ssl.SSLCertVerificationError as exc:  # a configuration problem, not an outage
            sock.close()
            raise PermanentError(
                f"broker {address.url}: TLS certificate not trusted: {exc}"
            ) from None
        except (OSError, ValueError) as exc:
            sock.close()
            failures.append(f"{host}:{port}: {exc}" if address.others else str(exc))
    raise TemporaryError(
        f"broker {address.url} unreachable: {'; '.join(failures)}", delay=2.0
    ) from None
