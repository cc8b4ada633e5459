"""What the reconciler learns from devices: classify every message, keep the latest state.

`classify()` is pure and total: any bytes on any topic become either an accepted message or
a counted rejection (malformed, oversize, unknown protocol, unknown device, topic mismatch)
— it never raises. `Observations` holds the result in memory; `reconciler.service.store`
persists it.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from linefleet_core.signing import signed_by
from linefleet_core.text import NOT_UNICODE, SURROGATE_ESCAPE, lone_surrogate
from linefleet_core.wire import (
    MAX_BYTES,
    Channel,
    DesiredState,
    Event,
    Online,
    Removal,
    ReportedState,
    parse_topic,
    speaks,
)

RECENT_EVENTS = 50


class Rejection(enum.StrEnum):
    MALFORMED = "malformed"
    OVERSIZE = "oversize"
    UNKNOWN_PROTOCOL = "unknown_protocol"
    UNKNOWN_DEVICE = "unknown_device"
    TOPIC_MISMATCH = "topic_mismatch"
    FOREIGN_TOPIC = "foreign_topic"
    DUPLICATE_EVENT = "duplicate_event"
    UNSIGNED = "unsigned"  # a report or event without the device's signature (key known)
    BAD_SIGNATURE = "bad_signature"  # signed, but not by the device's key
    FOREIGN_LINE = "foreign_line"  # a reported line the device was not sent (status)
    FOREIGN_MODEL = "foreign_model"  # a reported model its line was not sent (status)


@dataclass(frozen=True)
class Rejected:
    topic: str
    reason: Rejection
    detail: str


@dataclass(frozen=True)
class Accepted:
    site: str
    device: str
    channel: Channel
    message: ReportedState | Event | Online | DesiredState | Removal | None  # None: cleared


def _json(payload: bytes) -> dict[str, object] | str:
    try:
        value = json.loads(payload.decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # nesting too deep
        return f"not UTF-8 JSON: {exc}"
    if not isinstance(value, dict):
        return "expected a JSON object"
    if SURROGATE_ESCAPE.search(payload) and (field := lone_surrogate(value)) is not None:
        return f"{field}: {NOT_UNICODE}"
    return value


def _quick(
    model: type[ReportedState | Event | Online | DesiredState], payload: bytes
) -> ReportedState | Event | Online | DesiredState | None:
    """The message validated straight from its bytes by pydantic's JSON parser, or None.

    Several times faster than `json.loads` then validation (a status of 10,000 devices reads
    30,000 messages). Only a well-formed message is taken this way, and only when the careful
    path would accept the same message: text that `_json` refuses and this parser might
    accept (not UTF-8, a byte-order mark, `NaN` or `Infinity`) never comes here, and anything
    this parser refuses goes the careful way, which names the reason.
    """
    if b"NaN" in payload or b"Infinity" in payload or _HUGE_RUN in payload.translate(_DIGITS):
        return None
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if text.startswith("\ufeff"):
        return None
    try:
        return model.model_validate_json(text)
    except (ValueError, RecursionError):  # ValidationError is a ValueError
        return None


_DIGITS = bytes(ord("1") if b"0"[0] <= i <= b"9"[0] else ord(" ") for i in range(256))
_HUGE_RUN = b"1" * 300
"""A number of 300 digits or more may not fit a float: pydantic's JSON parser reads it as
infinity where the careful path refuses it (`float(int)` overflows), so such a message goes
the careful way. Found as a run of 300 `1`s once every ASCII digit is mapped to `1` and every
other byte to a space (a byte search: ten times faster than the regular expression
`[0-9]{300}` on 30,000 messages)."""


def _no_constants(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


_MODELS: dict[Channel, type[ReportedState | Event | Online | DesiredState]] = {
    Channel.REPORTED: ReportedState,
    Channel.EVENTS: Event,
    Channel.ONLINE: Online,
    Channel.DESIRED: DesiredState,
}


def classify(
    topic: str,
    payload: bytes,
    known: set[tuple[str, str]] | None = None,
    device_keys: Mapping[str, Ed25519PublicKey] | None = None,
) -> Accepted | Rejected:
    """Parse one message; `known` (site, device) pairs, when given, reject strangers; a device
    with a key in `device_keys` must sign its reports and events with it."""
    where = parse_topic(topic)
    if where is None or where.channel is Channel.FRAMES:
        return Rejected(topic, Rejection.FOREIGN_TOPIC, "not a linefleet v1 JSON topic")
    site, device, channel = where
    if known is not None and (site, device) not in known:
        return Rejected(topic, Rejection.UNKNOWN_DEVICE, f"{site}/{device} is not in the fleet")
    if len(payload) > MAX_BYTES[channel]:
        return Rejected(
            topic, Rejection.OVERSIZE, f"{len(payload)} bytes > {MAX_BYTES[channel]} bytes"
        )
    if not payload:
        return Accepted(site, device, channel, None)
    if channel is Channel.ONLINE and (seen := _ONLINE_SEEN.get(payload)) is not None:
        return Accepted(site, device, channel, seen)
    key = None if device_keys is None else device_keys.get(device)
    if key is None:
        quick = _quick(_MODELS[channel], payload)
        if isinstance(quick, Online):
            return _online(site, device, payload, quick)
        if quick is not None and (quick.site, quick.device) == (site, device):
            return Accepted(site, device, channel, quick)
    raw = _json(payload)
    if isinstance(raw, str):
        return Rejected(topic, Rejection.MALFORMED, raw)
    if not speaks(raw.get("protocol")):
        return Rejected(
            topic, Rejection.UNKNOWN_PROTOCOL, f"protocol {raw.get('protocol')!r} is not 1"
        )
    model: type[ReportedState | Event | Online | DesiredState | Removal] = _MODELS[channel]
    if channel is Channel.DESIRED and raw.get("kind") == "Removed":
        model = Removal  # a removed device's signed tombstone
    try:
        message = model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where_ = ".".join(str(p) for p in first["loc"]) or "(document)"
        return Rejected(topic, Rejection.MALFORMED, f"{where_}: {first['msg']}")
    if not isinstance(message, Online) and (message.site, message.device) != (site, device):
        return Rejected(
            topic,
            Rejection.TOPIC_MISMATCH,
            f"payload is for {message.site}/{message.device}, topic for {site}/{device}",
        )
    if key is not None and isinstance(message, ReportedState | Event):
        why = signed_by(raw, key)
        if why is not None:
            detail = f"not signed by {device}'s key" if why == "bad_signature" else "no signature"
            return Rejected(topic, Rejection(why), detail)
    if isinstance(message, Online):
        return _online(site, device, payload, message)
    return Accepted(site, device, channel, message)


def _online(site: str, device: str, payload: bytes, message: Online) -> Accepted:
    if len(_ONLINE_SEEN) < ONLINE_KEPT:
        _ONLINE_SEEN[payload] = message
    return Accepted(site, device, Channel.ONLINE, message)


ONLINE_KEPT = 16
_ONLINE_SEEN: dict[bytes, Online] = {}
"""Online payloads already accepted (at most `ONLINE_KEPT`), and their message. A birth names
no device, so every agent of a version sends the same bytes (10,000 devices: a handful of
distinct payloads): such bytes are accepted again without parsing them again. The message is
frozen, and an accepted payload is accepted on any device's topic (topic, fleet membership and
size are still checked first); a device's key plays no part for an Online message."""


def utc_seconds(moment: dt.datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


@dataclass
class DeviceObservation:
    site: str
    device: str
    reported: ReportedState | None = None
    last_seen: float | None = None  # epoch seconds: the newest of message arrival and `at`
    online: bool | None = None
    last_seq: int = 0  # of the current installation
    events: list[Event] = field(default_factory=list)  # newest last, at most RECENT_EVENTS
    install: str = ""  # the installation the newest event came from ("": agents without one)
    seqs: dict[str, int] = field(default_factory=dict)  # last seq per installation
    refused: Rejected | None = None  # the last message on its topics the reconciler refused
    refused_at: float | None = None  # when it arrived (epoch seconds)

    @property
    def key(self) -> str:
        return f"{self.site}/{self.device}"

    def seen(self, when: float) -> None:
        self.last_seen = when if self.last_seen is None else max(self.last_seen, when)


MAX_INSTALLS = 8


def _newest(seqs: dict[str, int], current: str) -> dict[str, int]:
    """Keep the current installation and a few earlier ones (late redeliveries)."""
    if len(seqs) <= MAX_INSTALLS:
        return seqs
    older = [k for k in seqs if k != current][-(MAX_INSTALLS - 1) :]
    return {k: seqs[k] for k in [*older, current]}


_FLEET_WIDE = {Rejection.FOREIGN_TOPIC, Rejection.UNKNOWN_DEVICE, Rejection.DUPLICATE_EVENT}
_DEVICE_CHANNELS = {Channel.REPORTED, Channel.EVENTS, Channel.ONLINE}


@dataclass
class Observations:
    devices: dict[str, DeviceObservation] = field(default_factory=dict)
    rejections: Counter[str] = field(default_factory=Counter)
    last_rejection: dict[str, str] = field(default_factory=dict)

    def device(self, site: str, device: str) -> DeviceObservation:
        key = f"{site}/{device}"
        if key not in self.devices:
            self.devices[key] = DeviceObservation(site, device)
        return self.devices[key]

    def reject(self, rejected: Rejected, received: float | None = None) -> None:
        """Count a refused message; one that a device's own topic carried (a report, event
        or birth) is also kept as that device's last refusal (one per device, replacing the
        one before). Kept only fleet-wide: a topic that names no device, a device not in the
        fleet, a desired document, a duplicate event (a store-and-forward redelivery, not a
        fault)."""
        self.rejections[rejected.reason.value] += 1
        self.last_rejection[rejected.reason.value] = f"{rejected.topic}: {rejected.detail}"
        if rejected.reason in _FLEET_WIDE:
            return
        where = parse_topic(rejected.topic)
        if where is None or where.channel not in _DEVICE_CHANNELS:
            return
        obs = self.device(where.site, where.device)
        obs.refused, obs.refused_at = rejected, received

    def apply(self, accepted: Accepted, received: float, *, live: bool = True) -> Rejected | None:
        """Record one accepted message; `live=False` for a retained replay (arrival is not news).

        Returns a rejection for an event already seen (a store-and-forward duplicate).
        """
        obs = self.device(accepted.site, accepted.device)
        msg = accepted.message
        if isinstance(msg, ReportedState):
            obs.reported = msg
            obs.seen(min(utc_seconds(msg.at), received))
            if live:
                obs.seen(received)
        elif isinstance(msg, Online):
            obs.online = msg.online
            if live:
                obs.seen(received)
        elif isinstance(msg, Event):
            install = msg.install or ""
            last = obs.seqs.get(install, obs.last_seq if install == obs.install else 0)
            if msg.seq <= last:
                topic = f"{obs.key}/events"
                return Rejected(topic, Rejection.DUPLICATE_EVENT, f"seq {msg.seq} already seen")
            obs.seqs = _newest({**obs.seqs, install: msg.seq}, install)
            obs.install, obs.last_seq = install, msg.seq
            obs.events = [*obs.events, msg][-RECENT_EVENTS:]
            obs.seen(received)
        elif msg is None and accepted.channel is Channel.REPORTED:
            obs.reported = None
        return None

    def ingest(
        self,
        topic: str,
        payload: bytes,
        received: float,
        known: set[tuple[str, str]] | None = None,
        *,
        live: bool = True,
        device_keys: Mapping[str, Ed25519PublicKey] | None = None,
    ) -> Accepted | Rejected:
        """Classify and record one message; never raises on bad input."""
        return self.record(classify(topic, payload, known, device_keys), received, live=live)

    def record(
        self, result: Accepted | Rejected, received: float, *, live: bool = True
    ) -> Accepted | Rejected:
        """Record what `classify` made of one message (`ingest` with the classification done
        beforehand, e.g. while a snapshot was still arriving)."""
        if isinstance(result, Accepted):
            duplicate = self.apply(result, received, live=live)
            if duplicate is not None:
                self.reject(duplicate, received)
                return duplicate
        else:
            self.reject(result, received)
        return result
