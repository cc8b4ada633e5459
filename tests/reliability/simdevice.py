"""A lightweight protocol client: a simulated edge device written from `docs/protocol.md`.

It does what the protocol asks of a device, without ONNX: persistent session with the stable
id `linefleet-device-<id>`, last will then birth on every connect, re-subscribe to its own
`…/desired`; verify each document (signature, pinned key, content hash, addressee, generation),
"stage" the serving artifact (read the file, check size and sha256) before switching, and
never drop the model it serves until the new one checked out. It reports a full snapshot on
every change and every heartbeat and sends events with a per-device `seq`. Its replay floor
is kept per signing key, as the protocol asks (`linefleet_core.highwater`).

Everything that leaves the device goes through its own outbox (kept across a simulated kill,
as a real device keeps it on disk): a message leaves the outbox only when the broker
acknowledged it, and after a kill every unacknowledged message is sent again, in order (which
is how duplicates arise; the consumer drops them by `seq`). Like the real edge's link, it has
**one message in flight**: the next leaves only after the previous one's PUBACK. With several
in flight, paho re-sends the unacknowledged ones only after the CONNACK of a reconnect, while
a message published in that window goes out at once and overtakes them; the receiver then
drops the older one as a duplicate of a higher `seq` (`docs/protocol.md` §7). Reports carry an extra
`report_seq` field (receivers ignore unknown fields) so the consumer can prove exactly-once
delivery of every snapshot.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import hashlib
import json
import random
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from linefleet_core import highwater
from linefleet_core.signing import Refusal, TrustedKeys, VerifyError, verify_document
from linefleet_core.wire import Applied, DesiredState, Removal, client_id, online_payload

AGENT = "linefleet-soak-sim/1"


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Pending:
    topic: str
    payload: bytes
    retain: bool
    mid: int | None = None  # the MQTT message id on the current connection


@dataclass
class Counters:
    reports: int = 0  # report_seq issued
    events: int = 0  # event seq issued
    resent: int = 0  # messages sent again after a kill
    refused: int = 0  # desired documents refused
    switches: int = 0
    without_model: int = 0  # reports made while serving nothing after the first activation
    kills: int = 0


@dataclass
class DeviceDisk:
    """What survives a kill: the device's persisted state and outbox."""

    held: Applied | None = None
    marks: dict[str, Applied] = field(default_factory=dict)  # newest accepted, per signing key
    applied_hash: str = ""
    applied_generation: int = 0
    serving_sha: str = ""
    pending_sha: str = ""
    error: str = ""
    outbox: list[Pending] = field(default_factory=list)
    disk_full: bool = False


class SimDevice:
    def __init__(
        self,
        site: str,
        device: str,
        host: str,
        port: int,
        keys: TrustedKeys,
        heartbeat: float,
        event_every: float,
        seed: int,
    ) -> None:
        self.site, self.device = site, device
        self.host, self.port = host, port
        self.keys = keys
        self.heartbeat = heartbeat
        self.event_every = event_every
        self.rng = random.Random(seed)
        self.root = f"linefleet/v1/{site}/{device}"
        self.disk = DeviceDisk()
        self.counters = Counters()
        self.lock = threading.RLock()
        self.client: mqtt.Client | None = None
        # Filled by paho's thread without taking `lock` (publishing under `lock` while a
        # callback waits for it would deadlock with paho's own locks); drained by `tick`.
        self.inbox: collections.deque[bytes] = collections.deque()
        self.acks: collections.deque[tuple[int, int]] = collections.deque()
        self._target: DesiredState | None = None  # the accepted document (persisted raw)
        self._next_report = 0.0
        self._next_event = 0.0

    # --- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        with self.lock:
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=client_id("device", self.device),
                clean_session=False,
                protocol=MQTTProtocolVersion.MQTTv311,
            )
            client.max_inflight_messages_set(0)
            client.max_queued_messages_set(0)
            client.will_set(f"{self.root}/online", online_payload(False), qos=1, retain=True)
            client.reconnect_delay_set(0.2, 2.0)  # type: ignore[arg-type]  # paho takes floats
            client.on_connect = self._on_connect
            client.on_message = self._on_message
            client.on_publish = self._on_publish
            self.client = client
            for entry in self.disk.outbox:  # unacknowledged before the kill: send again
                entry.mid = None
                self.counters.resent += 1
            client.connect_async(self.host, self.port, keepalive=30)
            client.loop_start()
            self._send_next()

    def kill(self) -> None:
        """Power cut: the socket dies without DISCONNECT (the broker sends the will)."""
        with self.lock:
            client, self.client = self.client, None
            self.counters.kills += 1
        if client is None:
            return
        sock = client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        client.loop_stop()

    def stop(self) -> None:
        with self.lock:
            client, self.client = self.client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()

    # --- paho callbacks ------------------------------------------------------------------

    def _on_connect(self, client: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            return
        client.publish(f"{self.root}/online", online_payload(True, AGENT), qos=1, retain=True)
        client.subscribe(f"{self.root}/desired", qos=1)

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        self.inbox.append(bytes(msg.payload))

    def _on_publish(self, client: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        self.acks.append((id(client), mid))

    def _take_acks(self) -> None:
        """Drop acknowledged messages from the outbox (acks from a dead connection are void)."""
        current = id(self.client) if self.client is not None else None
        acked = set()
        while self.acks:
            owner, mid = self.acks.popleft()
            if owner == current:
                acked.add(mid)
        if acked:
            self.disk.outbox = [e for e in self.disk.outbox if e.mid not in acked]
        self._send_next()

    # --- the device's loop (called by the harness) ----------------------------------------

    def tick(self, now: float) -> None:
        with self.lock:
            self._take_acks()
            while self.inbox:
                self._accept(self.inbox.popleft())
            if self.disk.pending_sha:
                self._converge()
            if self.event_every and now >= self._next_event:
                if self._next_event:
                    self.event("override", "operator", "operator re-labelled a frame")
                self._next_event = now + self.rng.uniform(0.5, 1.5) * self.event_every
            if now >= self._next_report:
                self.report()
                self._next_report = now + self.heartbeat

    def _accept(self, payload: bytes) -> None:
        try:
            if not payload:  # removal is a signed tombstone, never an empty payload
                raise VerifyError(Refusal.UNSIGNED_REMOVAL, "empty desired payload")
            floor = highwater.floor(self.disk.marks, self.keys)
            doc = verify_document(payload, self.keys, device=self.device, held=floor)
        except VerifyError as exc:
            self.counters.refused += 1
            self.event("refused-document", exc.reason.value, str(exc))
            return
        if isinstance(doc, Removal):
            self.disk.error = "removed from the fleet"
            self.report()
            return
        accepted = Applied(generation=doc.generation, content_hash=doc.content_hash)
        if doc.signature is not None:
            self.disk.marks = highwater.marked(self.disk.marks, doc.signature.key_id, accepted)
        if self.disk.held and doc.content_hash == self.disk.held.content_hash:
            return  # a duplicate (QoS 1 redelivery or a retained replay)
        self.disk.held = accepted
        self._target = doc
        self.disk.pending_sha = doc.spec.lines[0].serving.artifact.sha256
        self._converge()

    def _converge(self) -> None:
        doc = self._target
        if doc is None:
            return
        artifact = doc.spec.lines[0].serving.artifact
        if artifact.sha256 != self.disk.serving_sha:
            if self.disk.disk_full:
                message = f"not enough disk for {artifact.sha256[:12]}"
                if self.disk.error != message:
                    self.disk.error = message
                    self.report()
                return
            problem = _check(artifact.url, artifact.sha256, artifact.size)
            if problem:
                self.disk.error = problem
                self.report()
                return
            self.disk.serving_sha = artifact.sha256  # switch only after the check
            self.counters.switches += 1
            self.event("activation", "converged", f"serving {artifact.sha256[:12]}")
        self.disk.pending_sha = ""
        self.disk.error = ""
        self.disk.applied_hash = doc.content_hash
        self.disk.applied_generation = doc.generation
        self.report()

    # --- outbox ---------------------------------------------------------------------------

    def _put(self, channel: str, body: dict[str, Any], retain: bool) -> None:
        entry = Pending(f"{self.root}/{channel}", json.dumps(body).encode(), retain)
        self.disk.outbox.append(entry)
        self._send_next()

    def _send_next(self) -> None:
        """Publish the oldest message unless it is already in flight (one at a time, in order).

        Once handed to paho it stays there until its PUBACK, across reconnects (paho re-sends
        it after the CONNACK), so nothing newer can overtake it.
        """
        if self.client is None or not self.disk.outbox:
            return  # offline (killed): the outbox waits for start()
        entry = self.disk.outbox[0]
        if entry.mid is None:
            info = self.client.publish(entry.topic, entry.payload, qos=1, retain=entry.retain)
            entry.mid = info.mid

    def report(self) -> None:
        self.counters.reports += 1
        if self.disk.applied_generation and not self.disk.serving_sha:
            self.counters.without_model += 1
        applied = None
        if self.disk.applied_hash:
            applied = {
                "generation": self.disk.applied_generation,
                "content_hash": self.disk.applied_hash,
            }
        held = self.disk.held.model_dump(mode="json") if self.disk.held else None
        self._put(
            "reported",
            {
                "protocol": 1,
                "kind": "ReportedState",
                "site": self.site,
                "device": self.device,
                "at": now_iso(),
                "agent": AGENT,
                "desired": held,
                "applied": applied,
                "lines": [],
                "error": self.disk.error,
                "report_seq": self.counters.reports,
            },
            retain=True,
        )

    def event(self, type: str, reason: str, message: str) -> None:
        self.counters.events += 1
        self._put(
            "events",
            {
                "protocol": 1,
                "kind": "Event",
                "site": self.site,
                "device": self.device,
                "seq": self.counters.events,
                "at": now_iso(),
                "type": type,
                "reason": reason,
                "message": message,
            },
            retain=False,
        )


_CHECKED: dict[tuple[str, str, int], str] = {}


def _check(url: str, sha256: str, size: int) -> str:
    """Stage an artifact: '' when the file at `url` has `size` bytes and hashes to `sha256`."""
    key = (url, sha256, size)
    if key not in _CHECKED:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "file":
            return f"{url}: the simulator reads file:// only"
        try:
            data = Path(urllib.request.url2pathname(parts.path)).read_bytes()
        except OSError as exc:
            return f"{url}: {exc.strerror}"
        if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
            return f"{url}: size or sha256 does not match"
        _CHECKED[key] = ""
    return _CHECKED[key]
