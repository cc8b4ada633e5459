"""`statusread.intake` (what `linefleet status` reads from a broker's retained messages) reads a
snapshot exactly as the careful path does: the quick parse of `reconciler.service.observed`
switched off, every message goes through `json.loads`, then validation.

Any cut in the intake (a narrower view of the desired documents, sharing what documents have
in common, skipping a check) must leave these equal: the desired documents kept (as bytes),
every refusal counted and its last detail, what each device reported, when it was seen and
whether it is online, and the status JSON built from them, byte for byte.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from linefleet_core.mqttsession import Message
from linefleet_core.wire import DesiredState
from reconciler.service import observed
from reconciler.service.fleetstatus import fleet_status, json_chunks
from reconciler.service.observed import Observations
from reconciler.service.statusread import Early, intake
from tests.fuzz.test_fuzz_wire import SIGNED
from tests.hostile import wire_corpus as wc

NOW = 1_900_000_000.0
KEYS = {wc.DEVICE: wc.KEY.public}


def _snapshot(messages: Mapping[str, bytes]) -> dict[str, Message]:
    return {name: Message(name, payload, True, NOW) for name, payload in messages.items()}


def _read(
    snapshot: dict[str, Message],
    known: set[tuple[str, str]] | None,
    keys: Mapping[str, Ed25519PublicKey] | None,
) -> dict[str, Any]:
    """Everything status takes from `intake`, in comparable form."""
    observations = Observations()
    desired = intake(snapshot, observations, NOW, known, keys)
    status = fleet_status(desired, observations, NOW)
    return {
        "desired": {k: (type(v).__name__, v.model_dump_json()) for k, v in desired.items()},
        "rejections": dict(observations.rejections),
        "last_rejection": dict(observations.last_rejection),
        "devices": {
            key: (
                None if obs.reported is None else obs.reported.model_dump_json(),
                obs.last_seen,
                obs.online,
            )
            for key, obs in observations.devices.items()
        },
        "json": "".join(json_chunks(status, NOW)),
    }


def _careful(
    monkeypatch: pytest.MonkeyPatch,
    snapshot: dict[str, Message],
    known: set[tuple[str, str]] | None,
    keys: Mapping[str, Ed25519PublicKey] | None,
) -> dict[str, Any]:
    with monkeypatch.context() as patch:
        patch.setattr(observed, "_quick", lambda _model, _payload: None)
        patch.setattr(observed, "_ONLINE_SEEN", {})
        return _read(snapshot, known, keys)


def _agree(
    monkeypatch: pytest.MonkeyPatch,
    messages: Mapping[str, bytes],
    known: set[tuple[str, str]] | None = None,
    keys: Mapping[str, Ed25519PublicKey] | None = None,
) -> dict[str, Any]:
    snapshot = _snapshot(messages)
    quick = _read(snapshot, known, keys)
    assert quick == _careful(monkeypatch, snapshot, known, keys)
    return quick


def _doc(device: str, **changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(SIGNED)
    doc["site"], doc["device"] = wc.SITE, device
    doc.update(changes)
    return doc


def _b(doc: Any) -> bytes:
    return json.dumps(doc).encode()


@pytest.mark.parametrize("keys", [None, KEYS], ids=["no keys", "device keys"])
@pytest.mark.parametrize("case", wc.DEVICE_CASES, ids=lambda c: c.name)
def test_each_hostile_device_message(
    monkeypatch: pytest.MonkeyPatch,
    case: wc.DeviceCase,
    keys: Mapping[str, Ed25519PublicKey] | None,
) -> None:
    for known in (None, wc.KNOWN_DEVICES):
        _agree(monkeypatch, {case.topic: case.payload}, known, keys)


@pytest.mark.parametrize("case", wc.DESIRED_CASES, ids=lambda c: c.name)
def test_each_hostile_desired_document(
    monkeypatch: pytest.MonkeyPatch, case: wc.DesiredCase
) -> None:
    name = f"linefleet/v1/{wc.SITE}/{wc.DEVICE}/desired"
    _agree(monkeypatch, {name: case.payload}, wc.KNOWN_DEVICES)


def test_a_fleet_of_good_and_bad_documents(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many devices whose documents share most of their content, some of them refused (an
    over-long number, a wrong type, another device's document, a stray field), with reports,
    signed, unsigned and forged, and births: kept and refused alike by both paths."""
    messages: dict[str, bytes] = {}
    devices = [f"dev-{n}" for n in range(1, 13)]
    for n, device in enumerate(devices):
        root = f"linefleet/v1/{wc.SITE}/{device}"
        doc = _doc(device, generation=n + 1)
        line = doc["spec"]["lines"][0]
        if n == 3:
            line["telemetry"]["daily_upload_budget_mb"] = 10**330  # not a float: refused
        elif n == 4:
            line["serving"]["opset"] = "17"  # strict: a string is not an int
        elif n == 5:
            doc["device"] = devices[0]  # another device's document on this topic
        elif n == 6:
            line["serving"]["unknown_field"] = {"nested": [1, 2]}  # ignored, kept
        elif n == 7:
            line["serving"]["reference_stats"] = {"brightness": 10**299}  # long, a float
        messages[f"{root}/desired"] = _b(doc)
        report = wc.reported(device=device)
        if n % 3 == 1:
            report = wc.KEY.sign(report)
        elif n % 3 == 2:
            report = wc.ROGUE.sign(report)
        messages[f"{root}/reported"] = _b(report)
        messages[f"{root}/online"] = _b({"protocol": 1, "online": n % 2 == 0, "agent": "a"})
    known = {(wc.SITE, d) for d in devices}
    keys = dict.fromkeys(devices[::2], wc.KEY.public)
    for k in (None, keys):
        for fleet in (None, known):
            read = _agree(monkeypatch, messages, fleet, k)
            assert len(read["desired"]) == len(devices) - 3
            assert read["rejections"].get("malformed") == 2  # the long number, the string
            assert read["rejections"].get("topic_mismatch") == 1
            # with keys, devices 0, 6 (unsigned) and 2, 8 (forged) of the keyed ones
            assert read["rejections"].get("unsigned") == (None if k is None else 2)
            assert read["rejections"].get("bad_signature") == (None if k is None else 2)
            for key, (kind, dumped) in read["desired"].items():  # whole documents, as sent
                full = DesiredState.model_validate(
                    json.loads(messages[f"linefleet/v1/{key}/desired"])
                )
                assert (kind, dumped) == ("DesiredState", full.model_dump_json())
            reported = [key for key, (rep, _, _) in read["devices"].items() if rep is not None]
            assert len(reported) == len(devices) - (0 if k is None else 4)


def _fleet_messages() -> dict[str, bytes]:
    """Three devices: good documents and reports, one malformed report, a stranger's birth."""
    out: dict[str, bytes] = {}
    for n, device in enumerate(("dev-1", "dev-2", "dev-3")):
        root = f"linefleet/v1/{wc.SITE}/{device}"
        out[f"{root}/desired"] = _b(_doc(device, generation=n + 1))
        out[f"{root}/reported"] = b"{not json" if n == 1 else _b(wc.reported(device=device))
        out[f"{root}/online"] = _b({"protocol": 1, "online": True})
    out[f"linefleet/v1/{wc.SITE}/stranger/online"] = _b({"protocol": 1, "online": True})
    return out


def test_early_classification_reads_as_the_intake_alone() -> None:
    """Messages classified as they arrived (`Early`, fed by the raw reader) are recorded
    exactly as the intake records a snapshot it classifies itself, `known` and `keys` held."""
    snapshot = _snapshot(_fleet_messages())
    known = {(wc.SITE, d) for d in ("dev-1", "dev-2", "dev-3")}
    keys = {"dev-3": wc.KEY.public}
    plain = Observations()
    alone = intake(snapshot, plain, NOW, known, keys)
    early = Early(known, keys)
    for msg in reversed(list(snapshot.values())):  # in any order the broker sends them
        early(msg)
    observations = Observations()
    read = intake(snapshot, observations, NOW, early=early)
    assert read == alone and len(read) == 3
    assert observations == plain
    assert observations.rejections == {"malformed": 1, "unknown_device": 1, "unsigned": 1}


def test_early_classification_of_other_bytes_is_not_used() -> None:
    """A topic that arrived twice during the read: the snapshot keeps the last message, and
    the intake judges those bytes, never what an earlier message on the topic was."""
    messages = _fleet_messages()
    name = f"linefleet/v1/{wc.SITE}/dev-1/desired"
    snapshot = _snapshot(messages)
    early = Early()
    early(Message(name, b"{broken", True, NOW))  # the first message on the topic, replaced
    for other, msg in snapshot.items():
        if other != name:
            early(msg)
    observations = Observations()
    read = intake(snapshot, observations, NOW, early=early)
    assert f"{wc.SITE}/dev-1" in read and observations.rejections == {"malformed": 1}
    fixed = {**snapshot, name: Message(name, b"{broken", True, NOW)}
    early(snapshot[name])  # the other way round: classified good, the snapshot holds bad bytes
    observations = Observations()
    read = intake(fixed, observations, NOW, early=early)
    assert f"{wc.SITE}/dev-1" not in read and observations.rejections == {"malformed": 2}


def test_early_holds_known_and_keys() -> None:
    with pytest.raises(ValueError, match="early"):
        intake({}, Observations(), NOW, {(wc.SITE, wc.DEVICE)}, early=Early())
