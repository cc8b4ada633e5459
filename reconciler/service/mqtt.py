"""paho-mqtt plumbing for the reconciler: broker URLs, one session, retained snapshots, PUBACKs.

Callbacks run on paho's network thread and only put messages on a queue; everything else
happens on the caller's thread, so the reconciler stays single-threaded in its logic.
A session re-subscribes on every (re)connect. Network failures become `TemporaryError`
(exit 4), a refused CONNECT (bad credentials, ACL) a `PermanentError`.
"""

from __future__ import annotations

import queue
import ssl
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from linefleet_core.errors import PermanentError, TemporaryError
from linefleet_core.mqtturl import BrokerAddress


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
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

        self.address = address
        self.subscriptions = list(subscriptions)
        self.inbox: queue.Queue[Message] = queue.Queue()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self._refused: str | None = None
        self._lock = threading.Lock()
        self._pending_subs: set[int] = set()
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
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
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
        if self.subscriptions:
            _, mid = client.subscribe([(f, 1) for f in self.subscriptions])
            with self._lock:
                self._pending_subs = {mid}
        else:
            self.subscribed.set()
        self.connected.set()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, _reason: Any, _p: Any) -> None:
        self.connected.clear()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, _codes: Any, _p: Any) -> None:
        with self._lock:
            self._pending_subs.discard(mid)
            if not self._pending_subs:
                self.subscribed.set()

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        self.inbox.put(Message(msg.topic, bytes(msg.payload), bool(msg.retain), time.time()))

    # --- caller thread ---

    def connect(self, timeout: float = 5.0) -> Session:
        where = self.address.url
        try:
            self.client.connect(self.address.host, self.address.port, self.keepalive)
        except ssl.SSLCertVerificationError as exc:  # a configuration problem, not an outage
            raise PermanentError(f"broker {where}: TLS certificate not trusted: {exc}") from None
        except (OSError, ValueError) as exc:
            raise TemporaryError(f"broker {where} unreachable: {exc}", delay=2.0) from None
        self.client.loop_start()
        if not self.connected.wait(timeout):
            self.close()
            raise TemporaryError(f"broker {where}: no CONNACK within {timeout:g}s", delay=2.0)
        if self._refused is not None:
            self.close()
            raise PermanentError(f"broker {where} refused the connection: {self._refused}")
        if not self.subscribed.wait(timeout):
            self.close()
            raise TemporaryError(f"broker {where}: no SUBACK within {timeout:g}s", delay=2.0)
        return self

    def close(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def publish_all(self, messages: Iterable[Outgoing], timeout: float = 30.0) -> int:
        """Publish and wait for every PUBACK; return how many were acknowledged.

        Raises `TemporaryError` naming how many were acknowledged when the broker goes away
        or does not acknowledge in time, so a caller can say what was half done.
        """
        infos = []
        for msg in messages:
            infos.append(
                self.client.publish(msg.topic, msg.payload, qos=msg.qos, retain=msg.retain)
            )
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


def retained_snapshot(
    address: BrokerAddress,
    topic_filter: str | Sequence[str],
    client_id: str,
    *,
    quiet: float = 0.5,
    limit: float = 30.0,
    timeout: float = 5.0,
) -> dict[str, Message]:
    """Every retained message under the filter(s), by topic.

    The broker queues a subscription's retained messages before anything published after
    the SUBACK, so once our own barrier message (published after the SUBACK, on a topic only
    we subscribe to) comes back, the snapshot is complete. If the barrier never comes back
    (a broker ACL without `linefleet/v1/_barrier/#`), `quiet` seconds without a message end
    the snapshot instead; a pause after which messages were still arriving (a busy machine)
    only sends the barrier again.
    """
    filters = [topic_filter] if isinstance(topic_filter, str) else list(topic_filter)
    with Session(address, client_id, subscriptions=[*filters, barrier_topic(client_id)]) as s:
        s.connect(timeout)
        return collect_retained(s, barrier_topic(client_id), quiet=quiet, limit=limit)


def barrier_topic(client_id: str) -> str:
    return f"{BARRIER_ROOT}/{client_id}"


def collect_retained(
    session: Session, barrier: str, *, quiet: float = 0.5, limit: float = 30.0
) -> dict[str, Message]:
    """The retained messages of a session that has just subscribed (to its filters and to
    `barrier`): publishes the barrier and reads until it comes back (see `retained_snapshot`)."""
    session.client.publish(barrier, b"", qos=1, retain=False)
    found: dict[str, Message] = {}
    end = time.monotonic() + limit
    arrived = 0  # messages since the last barrier was sent
    while (wait := min(quiet, end - time.monotonic())) > 0:
        try:
            msg = session.inbox.get(timeout=wait)
        except queue.Empty:
            if not arrived:
                break  # silent since the last barrier: nothing more is coming
            # Messages were still arriving: a pause on a busy machine, not the end. Ask again.
            session.client.publish(barrier, b"", qos=1, retain=False)
            arrived = 0
            continue
        if msg.topic == barrier:
            break
        arrived += 1
        if msg.retain:
            found[msg.topic] = msg
    return found
