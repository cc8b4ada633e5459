"""paho-mqtt plumbing shared by the reconciler and the trainer: one session, retained
snapshots (by wildcard, or by exact topic where the broker hides retained messages from
wildcards), PUBACKs.

Callbacks run on paho's network thread and only put messages on a queue; everything else
happens on the caller's thread, so the reconciler stays single-threaded in its logic.
A session re-subscribes on every (re)connect; given a cluster's nodes, it connects to the
first that answers and fails over to the next when its node goes away. Network failures
become `TemporaryError` (exit 4), a refused CONNECT (bad credentials, ACL) a `PermanentError`.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from linefleet_core.errors import LinefleetError, PermanentError, TemporaryError
from linefleet_core.mqtturl import CERT_ENV, KEY_ENV, BrokerAddress


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool
    received: float  # time.time() when it arrived


@dataclass(frozen=True)
class Outgoing:
    topic: str
    payload: bytes
    retain: bool = True
    qos: int = 1


CLIENT_CERT_ALERTS = (
    "CERTIFICATE_REQUIRED",
    "BAD_CERTIFICATE",
    "UNKNOWN_CA",
    "CERTIFICATE_UNKNOWN",
)
"""TLS alerts a broker sends when it wants a client certificate or does not trust the one it
got (NATS sends bad_certificate for a missing one)."""


class _LastError(logging.Handler):
    """Keeps the last error paho logs (a socket or TLS failure it otherwise only counts as a
    lost connection). Its logger is private and passes errors only: paho formats nothing for
    its per-packet debug lines."""

    def __init__(self, name: str) -> None:
        super().__init__(logging.ERROR)
        self.last: str | None = None
        self.logger = logging.Logger(f"linefleet.mqtt.{name}", logging.ERROR)
        self.logger.propagate = False
        self.logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.last = record.getMessage()


class Session:
    """One MQTT connection. Use as a context manager; messages arrive on `inbox`.

    With `reconnect=False` a lost connection stays lost (paho would otherwise reconnect and
    send again every unacknowledged message: `reconciler.service.fence` must not); `will` is
    the last will the broker publishes if the connection ends without a DISCONNECT.
    """

    def __init__(
        self,
        address: BrokerAddress,
        client_id: str,
        *,
        clean_session: bool = True,
        subscriptions: Sequence[str] = (),
        keepalive: int = 30,
        reconnect: bool = True,
        will: Outgoing | None = None,
        qos: int = 1,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

        self.address = address
        self.client_id = client_id
        self.subscriptions = list(subscriptions)
        self.qos = qos  # of the subscriptions (0: a one-off read of retained state, below)
        self.inbox: queue.Queue[Message] = queue.Queue()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self._refused: str | None = None
        self._lock = threading.Lock()
        self._pending_subs: dict[int, list[str]] = {}  # SUBSCRIBE packet id -> its filters
        self._closing = False
        self._sub_refused: str | None = None
        self.keepalive = keepalive
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=MQTTProtocolVersion.MQTTv311,
            reconnect_on_failure=reconnect,
        )
        if will is not None:
            client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        client.max_inflight_messages_set(0)  # 0: no client-side limit (the broker has none)
        client.max_queued_messages_set(0)
        address.configure(client)
        self._errors = _LastError(client_id)
        client.enable_logger(self._errors.logger)  # only paho's errors reach the handler
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self.client = client

    # --- paho callbacks (network thread) ---

    def _on_connect(self, client: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._refused = str(reason)
            self.connected.set()
            return
        self._refused = None
        self.subscribed.clear()
        self._subscribe(client)
        self.connected.set()

    def _subscribe(self, client: Any) -> None:
        self._sub_refused = None
        with self._lock:
            self._pending_subs = {}
        self._send_subscribe(client, self.subscriptions)

    def _send_subscribe(self, client: Any, filters: Sequence[str], qos: int | None = None) -> None:
        """SUBSCRIBE `filters`, `SUBSCRIBE_BATCH` to a packet; `subscribed` is set once every
        packet's SUBACK is in (at once for none)."""
        if not filters:
            with self._lock:
                if not self._pending_subs:
                    self.subscribed.set()
            return
        with self._lock:  # (the SUBACK callback waits for the packet id to be recorded)
            self.subscribed.clear()
            for start in range(0, len(filters), SUBSCRIBE_BATCH):
                chunk = list(filters[start : start + SUBSCRIBE_BATCH])
                _, mid = client.subscribe([(f, self.qos if qos is None else qos) for f in chunk])
                self._pending_subs[mid] = chunk

    def subscribe_more(
        self, filters: Sequence[str], timeout: float = 30.0, qos: int | None = None
    ) -> None:
        """Add `filters` to the session's subscriptions (kept for a reconnect, at the
        session's QoS) and wait for their SUBACKs; a refused filter is a `TemporaryError`, as
        in `connect()`. `qos`: of these subscriptions (default: the session's)."""
        if not filters:
            return
        self.subscriptions.extend(filters)
        self._sub_refused = None
        self._send_subscribe(self.client, filters, qos)
        where = self.address.url
        if not self.subscribed.wait(timeout):
            raise TemporaryError(f"broker {where}: no SUBACK within {timeout:g}s", delay=2.0)
        if self._sub_refused is not None:
            raise TemporaryError(
                f"broker {where} refused the subscription to {self._sub_refused}", delay=2.0
            )

    def unsubscribe(self, filters: Sequence[str]) -> None:
        """Drop `filters` from the session's subscriptions. The UNSUBACK is not awaited: a
        broker handles a connection's packets in order, so what this session publishes next
        no longer comes back through them, and a message that still does is only read."""
        gone = [f for f in filters if f in self.subscriptions]
        if gone:
            self.subscriptions = [f for f in self.subscriptions if f not in gone]
            self.client.unsubscribe(gone)

    def _on_disconnect(self, client: Any, _u: Any, _f: Any, _reason: Any, _p: Any) -> None:
        self.connected.clear()
        if not self._closing:
            self.address.fail_over(client)  # paho's loop reconnects, to the next node

    def _on_connect_fail(self, client: Any, _u: Any) -> None:
        self.address.fail_over(client)

    def _on_subscribe(self, client: Any, _u: Any, mid: int, codes: Any, _p: Any) -> None:
        with self._lock:
            chunk = self._pending_subs.pop(mid, None)  # the session's own filters, or not ours
        ours = chunk is not None
        refused = [
            f"{f} ({code})" for f, code in zip(chunk or (), codes, strict=False) if code.is_failure
        ]
        if refused:  # e.g. a NATS node that could not create the JetStream consumer in time
            self._sub_refused = ", ".join(refused)
            if not self._closing:  # a long-lived session tries again (connect() gives up)
                threading.Timer(2.0, self._resubscribe, args=(client,)).start()
        with self._lock:
            if ours and not self._pending_subs:
                self.subscribed.set()

    def _resubscribe(self, client: Any) -> None:
        if not self._closing and self.connected.is_set():
            self._subscribe(client)

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        self.inbox.put(Message(msg.topic, bytes(msg.payload), bool(msg.retain), time.time()))

    # --- caller thread ---

    def connect(self, timeout: float = 5.0) -> Session:
        where = self.address.url
        failures = []
        for host, port in self.address.endpoints:  # the first node that answers
            try:
                self.client.connect(host, port, self.keepalive)
                break
            except ssl.SSLCertVerificationError as exc:  # a configuration problem, not an outage
                raise PermanentError(
                    f"broker {where}: TLS certificate not trusted: {exc}"
                ) from None
            except (OSError, ValueError) as exc:
                failures.append(f"{host}:{port}: {exc}" if self.address.others else str(exc))
        else:
            raise TemporaryError(
                f"broker {where} unreachable: {'; '.join(failures)}", delay=2.0
            ) from None
        self.client.loop_start()
        if not self.connected.wait(timeout):
            self.close()
            raise self._no_connack(timeout)
        if self._refused is not None:
            self.close()
            raise PermanentError(f"broker {where} refused the connection: {self._refused}")
        if not self.subscribed.wait(timeout):
            self.close()
            raise TemporaryError(f"broker {where}: no SUBACK within {timeout:g}s", delay=2.0)
        if self._sub_refused is not None:
            refused = self._sub_refused
            self.close()
            raise TemporaryError(f"broker {where} refused the subscription to {refused}", delay=2.0)
        return self

    def _no_connack(self, timeout: float) -> LinefleetError:
        """Why no CONNACK came: what paho saw go wrong on the socket, when it saw anything (a
        broker that ends the TLS session for want of a client certificate looks like an
        outage otherwise)."""
        where = self.address.url
        seen = self._errors.last
        alert = seen is not None and any(a in seen for a in CLIENT_CERT_ALERTS)
        if alert and self.address.cert_file is None:
            return PermanentError(
                f"broker {where} ended the TLS session ({seen}): it requires a client "
                f"certificate; set ${CERT_ENV} and ${KEY_ENV} to this client's PEM "
                "certificate and key"
            )
        if alert:
            return PermanentError(
                f"broker {where} refused this client's TLS certificate ({seen}): "
                f"${CERT_ENV} must be signed by a CA the broker trusts"
            )
        why = "" if seen is None else f" ({seen})"
        return TemporaryError(f"broker {where}: no CONNACK within {timeout:g}s{why}", delay=2.0)

    def close(self) -> None:
        """DISCONNECT, waited for (briefly) before the network thread stops: a socket closed
        with the packet unsent is an unclean end to the broker, which then publishes the
        session's will (a fenced publisher's will cuts its lease short while it is alive)."""
        self._closing = True
        try:
            if self.client.disconnect() == 0:
                end = time.monotonic() + CLOSE_SECONDS
                while self.connected.is_set() and time.monotonic() < end:
                    time.sleep(0.002)  # until paho has written DISCONNECT and closed
        finally:
            self.client.loop_stop()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def publish_all(
        self,
        messages: Iterable[Outgoing],
        timeout: float = 30.0,
        *,
        meanwhile: Callable[[], None] | None = None,
    ) -> int:
        """Publish and wait for every PUBACK; return how many were acknowledged.

        Raises `TemporaryError` naming how many were acknowledged when the broker goes away
        or does not acknowledge in time, so a caller can say what was half done.
        `meanwhile` runs once every message is handed to paho, before the wait for their
        PUBACKs (which `timeout` counts from its end): work that needs no broker, done while
        the broker and its subscribers work through the messages.
        """
        infos = []
        with self._woken_in_batches() as wake:
            for n, msg in enumerate(messages, 1):
                infos.append(
                    self.client.publish(msg.topic, msg.payload, qos=msg.qos, retain=msg.retain)
                )
                if n % WAKE_EVERY == 0:
                    wake()
        if meanwhile is not None:
            meanwhile()
        deadline = time.monotonic() + timeout
        done = 0
        for info in infos:
            while not _acked(info):
                if not self.connected.is_set() or time.monotonic() > deadline:
                    acked = sum(1 for i in infos if _acked(i))
                    raise TemporaryError(
                        f"broker {self.address.url} went away: {acked} of {len(infos)} "
                        "message(s) acknowledged",
                        delay=2.0,
                    )
                time.sleep(0.001)
            done += 1
        return done

    @contextlib.contextmanager
    def _woken_in_batches(self) -> Iterator[Callable[[], None]]:
        """paho wakes its network thread for every message it is handed (a byte through its
        socket pair), and the thread then takes the interpreter from the caller to write that
        one message: at 10,000 messages, 10,000 thread switches. Inside this block it is woken
        by `wake()` (every `WAKE_EVERY` messages) and once at the end, and writes everything
        queued at each wake-up. (Through paho 2's private `_sockpairW`; a paho without it is
        left to wake itself.)"""
        client = self.client
        pair = getattr(client, "_sockpairW", None)
        if not isinstance(pair, socket.socket):
            yield lambda: None
            return

        def wake() -> None:
            with contextlib.suppress(OSError):  # (full: the thread is awake already)
                pair.send(b"0")

        client._sockpairW = None
        try:
            yield wake
        finally:
            if client._sockpairW is None:
                client._sockpairW = pair
            wake()

    def drain(self, quiet: float, limit: float) -> list[Message]:
        """Messages until none arrived for `quiet` seconds (or `limit` seconds in all)."""
        out: list[Message] = []
        end = time.monotonic() + limit
        while True:
            wait = min(quiet, end - time.monotonic())
            if wait <= 0:
                return out
            try:
                out.append(self.inbox.get(timeout=wait))
            except queue.Empty:
                return out


def _acked(info: Any) -> bool:
    """PUBACK received; False (not an exception) when paho could not even send it."""
    try:
        return bool(info.is_published())
    except (RuntimeError, ValueError):
        return False


BARRIER_ROOT = "linefleet/v1/_barrier"
RETAINED_PROBE = f"{BARRIER_ROOT}/_retained"
SUBSCRIBE_BATCH = 500
"""Filters per SUBSCRIBE packet (an exact-topic read subscribes three per device)."""
WAKE_EVERY = 500
"""Messages `Session.publish_all` hands to paho between wake-ups of its network thread."""


class RetainedUnsupported(PermanentError):
    """The broker keeps no retained messages, or hides them from the wildcard filters of a read
    that has no exact topics to fall back on."""


NEEDS_TOPICS = (
    "`status` and `report` read the fleet's devices by exact topic when given --repo; "
    "see docs/protocol.md, 'Brokers'"
)


def wildcards_hide_retained(url: str) -> RetainedUnsupported:
    """The refusal of a wildcard read whose retained probe did not come back, by a reader
    that knows no exact topics to read instead."""
    return RetainedUnsupported(
        f"broker {url} does not deliver retained messages to wildcard subscriptions (a "
        f"retained probe on {RETAINED_PROBE} did not come back to {BARRIER_ROOT}/+), and this "
        f"read knows no exact topics to read instead. RabbitMQ's rabbitmq_mqtt plugin behaves "
        f"so. {NEEDS_TOPICS}"
    )


Expand = Callable[[Mapping[str, Message]], Iterable[str]]
"""Given what a read has found so far, the exact topics it should read (see `collect_retained`)."""


class Snapshot(dict[str, Message]):
    """Retained messages by topic, and how they were read."""

    exact: bool = False
    """Read by exact-topic subscriptions: only the topics asked for were seen (a retained
    message on any other topic, e.g. of a device no known fleet revision has, was not)."""


def is_wildcard(topic_filter: str) -> bool:
    return "+" in topic_filter or "#" in topic_filter


def reading_filters(address: BrokerAddress, filters: Sequence[str], expand: bool) -> list[str]:
    """The filters a read subscribes to first: with `?retained=exact`, none of the wildcards
    (refused when the read has no exact topics to read instead, `expand`)."""
    if address.retained != "exact":
        return list(filters)
    if not expand and any(is_wildcard(f) for f in filters):
        raise RetainedUnsupported(
            f"broker {address.url} is read by exact topic only (?retained=exact), and this "
            f"read knows no exact topics to read. {NEEDS_TOPICS}"
        )
    return [f for f in filters if not is_wildcard(f)]


def retained_snapshot(
    address: BrokerAddress,
    topic_filter: str | Sequence[str],
    client_id: str,
    *,
    quiet: float = 0.5,
    limit: float = 30.0,
    timeout: float = 5.0,
    qos: int = 1,
    expand: Expand | None = None,
) -> Snapshot:
    """Every retained message under the filter(s), by topic (see `collect_retained`, which
    also says what `expand` does).

    `qos=0` subscribes at QoS 0 (the barrier's filter too, so everything arrives in one
    class of service): a read-only snapshot in a clean session gains nothing from QoS 1 (a lost
    connection fails the read either way, and nothing is queued for later), and it spares a
    PUBACK per message on both sides (`linefleet status` reads 30,000 messages at 10,000
    devices).
    """
    filters = [topic_filter] if isinstance(topic_filter, str) else list(topic_filter)
    filters = reading_filters(address, filters, expand is not None)
    with Session(address, client_id, subscriptions=filters, qos=qos) as session:
        session.connect(timeout)
        return collect_retained(
            session, barrier_topic(client_id), quiet=quiet, limit=limit, expand=expand
        )


def barrier_topic(client_id: str) -> str:
    return f"{BARRIER_ROOT}/{client_id}"


def collect_retained(
    session: Session,
    barrier: str,
    *,
    quiet: float = 0.5,
    limit: float = 30.0,
    expand: Expand | None = None,
) -> Snapshot:
    """The retained messages of a session that has just subscribed to its filters.

    The broker queues a subscription's retained messages before anything published after
    the SUBACK, so once our own barrier message (published after the SUBACK, on a topic only
    we subscribe to) comes back, the snapshot is complete. If the barrier never comes back
    (a broker ACL without `linefleet/v1/_barrier/#`), `quiet` seconds without a message end
    the snapshot instead; a pause after which messages were still arriving (a busy machine)
    only sends the barrier again.

    First a retained probe (`RETAINED_PROBE`) is published. With wildcard filters it is read
    back through the wildcard `linefleet/v1/_barrier/+`: a broker that hands retained messages
    only to exact-topic subscriptions (RabbitMQ's MQTT plugin) would make the read silently
    empty. Then, given `expand` (what the caller knows it must read: every known device's
    topics), the read goes on by exact-topic subscriptions (`SUBSCRIBE_BATCH` filters a
    packet): `expand(found)` is asked again after each round, so what was found (a publish
    marker, a document naming an older commit) can name more topics, until it names none
    that is new. The result is then `Snapshot.exact`: a retained message on a topic nobody
    named is not in it. Without `expand`, such a broker is refused (`RetainedUnsupported`,
    exit 1). A read of exact topics only (or `?retained=exact` on the broker URL) goes
    straight to exact subscriptions; the probe, subscribed by its exact topic there, still
    refuses a broker that keeps no retained messages at all, and given several nodes, one
    whose nodes each keep their own (`check_shared_retained`).
    """
    end = time.monotonic() + limit
    session.publish_all([Outgoing(RETAINED_PROBE, b"1")], limit)
    # In order on one connection: the probe is stored, the subscription queues what is
    # retained (the probe included), then the barrier follows them.
    found = Snapshot()
    barriers = _Barrier(session, barrier)
    if any(is_wildcard(f) for f in session.subscriptions):
        session.client.subscribe(f"{BARRIER_ROOT}/+", qos=session.qos)
        probed, back = _read_round(session, barriers, found, quiet, end)
        if probed or not back:
            return found
        if expand is None:
            raise wildcards_hide_retained(session.address.url)
        first = [RETAINED_PROBE]
    else:
        first = [f"{BARRIER_ROOT}/+", RETAINED_PROBE]
    found.exact = expand is not None
    asked = set(session.subscriptions)
    probed = False
    # Exact-topic rounds (thousands of filters) subscribe at QoS 0, the barrier's filter too,
    # so a round's messages arrive in one class of service: a read in a clean session gains
    # nothing from QoS 1 (see `retained_snapshot`), and RabbitMQ makes each QoS 1 filter a
    # durable binding, at twice the cost.
    qos = session.qos
    if expand is not None:
        qos = 0
        first.insert(0, f"{BARRIER_ROOT}/+")
    while True:
        new = [] if expand is None else sorted(set(expand(found)) - asked)
        if not first and not new:
            return found
        asked.update(new)
        wanted = list(dict.fromkeys([*first, *new]))
        session.subscribe_more(wanted, max(1.0, end - time.monotonic()), qos=qos)
        round_probed, back = _read_round(session, barriers, found, quiet, end)
        if first and back and round_probed and session.address.others:
            check_shared_retained(session, quiet, end)
        if first and back and not round_probed:
            raise RetainedUnsupported(
                f"broker {session.address.url} keeps no retained messages (a retained probe "
                f"on {RETAINED_PROBE} did not come back, even to a subscription of its exact "
                "topic): linefleet keeps the fleet's desired state as retained messages, so "
                "it cannot publish or show status through this broker. See docs/protocol.md, "
                "'Brokers'"
            )
        probed = probed or round_probed
        first = []
        if not back:  # no barrier: an ACL without the barrier's topic; quiet ended the read
            return found


def check_shared_retained(session: Session, quiet: float, end: float) -> None:
    """On a broker of several nodes read by exact topic: a retained message published through
    the session's node must be held by every other node that answers, or a device connected
    to another node would never get its desired state (RabbitMQ's MQTT plugin keeps retained
    messages on the node they were published to, in a cluster too). Refused otherwise
    (`RetainedUnsupported`). A node that does not answer, or answers without our barrier (an
    ACL), proves nothing and is passed over."""
    import dataclasses
    import uuid

    address = session.address
    here = (session.client.host, session.client.port)
    nonce = f"{RETAINED_PROBE}/{uuid.uuid4().hex[:12]}"
    session.publish_all([Outgoing(nonce, b"1")], max(1.0, end - time.monotonic()))
    try:
        for host, port in address.endpoints:
            if (host, port) == here:
                continue
            node = dataclasses.replace(address, host=host, port=port, others=())
            client_id = f"{session.client_id}-node"
            try:
                held, back = _holds(node, client_id, nonce, quiet, end)
            except TemporaryError:
                continue  # that node is away: nothing to compare
            if back and not held:
                raise RetainedUnsupported(
                    f"broker {address.url}: a retained message published through "
                    f"{here[0]}:{here[1]} is not held by {host}:{port}: its nodes each keep "
                    "their own retained messages (RabbitMQ's MQTT plugin does so in a "
                    "cluster), so a device connected to another node than the reconciler's "
                    "would never get its desired state, and status would not see its reports. "
                    "Point every linefleet client at the same node, or use a broker whose nodes "
                    "share retained messages; see docs/protocol.md, 'Brokers'"
                )
    except BaseException:  # the refusal (or outage) is what the caller must see, not a
        with contextlib.suppress(TemporaryError):  # failed clean-up of the probe after it
            session.publish_all([Outgoing(nonce, b"")], max(CLEAR_SECONDS, end - time.monotonic()))
        raise
    session.publish_all([Outgoing(nonce, b"")], max(CLEAR_SECONDS, end - time.monotonic()))


CLEAR_SECONDS = 5.0
"""At least this long to clear the retained probe (a loaded broker acknowledges slowly)."""


CLOSE_SECONDS = 2.0
"""At most this long for a DISCONNECT to go out when a session closes."""

SHARED_RETAINED_TRIES = 3
"""Reads of another node before its missing copy of a retained message counts (a cluster
that replicates retained messages may take a moment: one second between reads), or before a
node whose barrier does not come back is passed over (a loaded node answers late; a node
that refuses the barrier, an ACL, proves nothing)."""


def _holds(
    node: BrokerAddress, client_id: str, topic: str, quiet: float, end: float
) -> tuple[bool, bool]:
    """Whether `node` holds a retained message on `topic`; and whether our barrier came back
    (False: the read proves nothing)."""
    held = back = False
    for attempt in range(SHARED_RETAINED_TRIES):
        if attempt:
            time.sleep(1.0)
        barrier = barrier_topic(client_id)
        with Session(node, client_id, subscriptions=[barrier, topic], qos=0) as other:
            other.connect(max(1.0, min(5.0, end - time.monotonic())))
            held, back = _read_round(other, _Barrier(other, barrier), {}, quiet, end, topic)
        if held:  # a barrier that did not come back may be a loaded node: it is asked again
            break
    return held, back


class _Barrier:
    """The barrier messages of one read: each round's carries its own number, so a copy the
    last round sent again (a pause) cannot end the next round early."""

    def __init__(self, session: Session, topic: str) -> None:
        self.session, self.topic, self.round = session, topic, 0

    def start(self) -> None:
        self.round += 1
        self.send()

    def send(self) -> None:
        self.session.client.publish(self.topic, str(self.round).encode(), qos=1, retain=False)

    def ends(self, msg: Message) -> bool:
        return msg.topic == self.topic and msg.payload == str(self.round).encode()


def _read_round(
    session: Session,
    barrier: _Barrier,
    found: dict[str, Message],
    quiet: float,
    end: float,
    probe: str = RETAINED_PROBE,
) -> tuple[bool, bool]:
    """Read retained messages into `found` until this round's barrier comes back; return
    whether the retained `probe` came, and whether the barrier did."""
    barrier.start()
    probed = False
    arrived = 0  # messages since the last barrier was sent
    while (wait := min(quiet, end - time.monotonic())) > 0:
        try:
            msg = session.inbox.get(timeout=wait)
        except queue.Empty:
            if not arrived:
                return probed, False  # silent since the last barrier: nothing more is coming
            # Messages were still arriving: a pause on a busy machine, not the end. Ask again.
            barrier.send()
            arrived = 0
            continue
        if barrier.ends(msg):
            return probed, True
        arrived += 1
        if msg.topic == probe:
            probed = probed or msg.retain
        elif msg.retain and not msg.topic.startswith(f"{BARRIER_ROOT}/"):
            found[msg.topic] = msg
    return probed, False
