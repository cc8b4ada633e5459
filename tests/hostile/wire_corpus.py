"""Hostile MQTT payloads, as a reusable corpus: what a broker, a device or a forger might send.

Two lists, one per receiver:

- `DESIRED_CASES`: payloads delivered on a device's `…/desired` topic. Each names the
  `Refusal` the device must answer with (`linefleet_core.signing.verify`, used by
  `edge_puller.desired.accept`). Built around a valid signed document for `plant/dev-1`.
- `DEVICE_CASES`: (topic, payload) pairs sent *to the reconciler* on `reported` / `events` /
  `online`, each with the `Rejection` `reconciler.service.observed.classify` must count.

Used by `tests/hostile/test_wire_corpus.py` (pure calls), by the real-Mosquitto tests next to it,
and by the fuzzers in `tests/fuzz/` as seeds.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any, NamedTuple

from linefleet_core.signing import Refusal, SigningKey, canonical_json, content_hash
from linefleet_core.wire import MAX_DESIRED_BYTES, MAX_EVENT_BYTES, MAX_REPORTED_BYTES, Applied
from tests.support.wiredocs import desired_envelope

SITE, DEVICE, OTHER = "plant", "dev-1", "dev-2"
KEY = SigningKey.generate()
ROGUE = SigningKey.generate()  # a key no device pins
HELD = 5  # the generation the device already holds in the stateful cases
SHA = "ab" * 32


def line_spec(
    url: str = "file:///srv/fleet/artifacts/m-2.onnx", sha: str = SHA, size: int = 4096
) -> dict[str, Any]:
    model = {
        "ref": "surface-classifier@2",
        "artifact": {"url": url, "sha256": sha, "size": size},
        "input": {"shape": [1, 3, 32, 32], "color": "rgb"},
        "output_classes": ["ok", "scratch", "dent"],
        "opset": 13,
        "reference_stats": {"brightness": 0.5},
    }
    return {
        "line": "plant/line-1",
        "cameras": [{"id": "cam-1", "fps": 10.0, "width": 64, "height": 48}],
        "taxonomy": {"ref": "surface-defects@1", "classes": ["ok", "scratch", "dent"]},
        "serving": model,
        "telemetry": {
            "uncertainty_band": [0.35, 0.65],
            "daily_upload_budget_mb": 50.0,
            "spool_mb": 50.0,
            "keep_defects": True,
            "keep_disagreements": True,
        },
        "health_gates": {
            "max_error_rate": 0.01,
            "max_latency_p95_ms": 100.0,
            "min_shadow_agreement": 0.9,
            "max_defect_rate_jump": 0.05,
            "max_drift_score": 0.3,
        },
    }


def document(generation: int = HELD + 1, device: str = DEVICE, **line: Any) -> dict[str, Any]:
    """An unsigned, well-formed desired state (content hash correct)."""
    spec = {"heartbeat_seconds": 60, "lines": [line_spec(**line)]}
    return desired_envelope(SITE, device, generation, spec)


def signed(doc: dict[str, Any], key: SigningKey = KEY) -> bytes:
    return canonical_json(key.sign(doc))


def held() -> Applied:
    """What the device holds in the stateful cases: generation HELD, its own content."""
    return Applied(generation=HELD, content_hash=document(HELD)["content_hash"])


def _mutated(mutate: Callable[[dict[str, Any]], None], *, resign: bool) -> bytes:
    """A valid document changed by `mutate`: after signing (a forgery) or before (a signed lie)."""
    doc = document()
    if resign:
        mutate(doc)
        return signed(doc)
    out = KEY.sign(doc)
    mutate(out)
    return canonical_json(out)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[last] = value

    return mutate


def _with_hash(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "content_hash": content_hash(doc["spec"])}


class DesiredCase(NamedTuple):
    name: str
    payload: bytes
    reason: Refusal
    stateful: bool = False  # checked against `held()` (replays), not a fresh device
    known_bug: str = ""  # an open defect: the test is an expected failure until it is fixed


def _desired_cases() -> list[DesiredCase]:
    good = document()
    return [
        DesiredCase("random-bytes", b"\xff\xfe\x00garbage\x9c", Refusal.MALFORMED),
        DesiredCase("not-json", b"desired: yes", Refusal.MALFORMED),
        DesiredCase("json-array", b"[1, 2, 3]", Refusal.MALFORMED),
        DesiredCase("json-null", b"null", Refusal.MALFORMED),
        DesiredCase("json-string", b'"DesiredState"', Refusal.MALFORMED),
        DesiredCase("nan-literal", b'{"protocol": 1, "generation": NaN}', Refusal.MALFORMED),
        DesiredCase("utf16", json.dumps(good).encode("utf-16"), Refusal.MALFORMED),
        DesiredCase(
            "deeply-nested",
            b'{"protocol": 1, "x": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
            Refusal.OVERSIZE,
        ),
        DesiredCase(
            "deeply-nested-within-size",
            b'{"protocol": 1, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            Refusal.MALFORMED,
        ),
        DesiredCase("oversize", b" " * (MAX_DESIRED_BYTES + 1), Refusal.OVERSIZE),
        DesiredCase(
            "oversize-signed",
            signed({**good, "padding": "x" * MAX_DESIRED_BYTES}),
            Refusal.OVERSIZE,
        ),
        DesiredCase("protocol-2", signed({**good, "protocol": 2}), Refusal.UNSUPPORTED_PROTOCOL),
        DesiredCase(
            "protocol-string", signed({**good, "protocol": "1"}), Refusal.UNSUPPORTED_PROTOCOL
        ),
        DesiredCase(
            "protocol-true",
            signed({**good, "protocol": True}),
            Refusal.UNSUPPORTED_PROTOCOL,
        ),
        DesiredCase(
            "protocol-missing",
            signed({k: v for k, v in good.items() if k != "protocol"}),
            Refusal.UNSUPPORTED_PROTOCOL,
        ),
        DesiredCase("unsigned", canonical_json(good), Refusal.UNSIGNED),
        DesiredCase(
            "unsigned-huge-generation",
            canonical_json({**good, "generation": 10**400}),
            Refusal.UNSIGNED,
        ),
        DesiredCase("signed-by-rogue-key", signed(good, ROGUE), Refusal.UNKNOWN_KEY),
        DesiredCase(
            "rogue-key-claims-pinned-id",
            canonical_json(
                {
                    **ROGUE.sign(good),
                    "signature": {**ROGUE.sign(good)["signature"], "key_id": KEY.key_id},
                }
            ),
            Refusal.BAD_SIGNATURE,
        ),
        DesiredCase(
            "alg-none", _mutated(_set("signature.alg", "none"), resign=False), Refusal.BAD_SIGNATURE
        ),
        DesiredCase(
            "signature-string",
            _mutated(_set("signature", "trust me"), resign=False),
            Refusal.BAD_SIGNATURE,
        ),
        DesiredCase(
            "signature-not-base64",
            _mutated(_set("signature.value", "!!not base64!!"), resign=False),
            Refusal.BAD_SIGNATURE,
        ),
        DesiredCase(
            "signature-truncated",
            _mutated(_set("signature.value", "AAAA"), resign=False),
            Refusal.BAD_SIGNATURE,
        ),
        DesiredCase(
            "tampered-artifact-url",
            _mutated(
                _set("spec.lines.0.serving.artifact.url", "http://evil.example/m.onnx"),
                resign=False,
            ),
            Refusal.BAD_SIGNATURE,
        ),
        DesiredCase(
            "tampered-generation",
            _mutated(_set("generation", 10**9), resign=False),
            Refusal.BAD_SIGNATURE,
        ),
        DesiredCase(
            "tampered-device", _mutated(_set("device", OTHER), resign=False), Refusal.BAD_SIGNATURE
        ),
        DesiredCase(
            "added-field-after-signing",
            _mutated(_set("rogue", True), resign=False),
            Refusal.BAD_SIGNATURE,
        ),
        DesiredCase(
            "content-hash-lies",
            signed({**good, "content_hash": "0" * 64}),
            Refusal.CONTENT_HASH_MISMATCH,
        ),
        DesiredCase(
            "another-devices-document", signed(document(device=OTHER)), Refusal.WRONG_DEVICE
        ),
        DesiredCase("float-generation", signed({**good, "generation": 6.0}), Refusal.MALFORMED),
        DesiredCase("string-generation", signed({**good, "generation": "6"}), Refusal.MALFORMED),
        DesiredCase("negative-generation", signed({**good, "generation": -1}), Refusal.MALFORMED),
        DesiredCase("wrong-kind", signed({**good, "kind": "ReportedState"}), Refusal.MALFORMED),
        DesiredCase("spec-is-list", signed({**good, "spec": []}), Refusal.MALFORMED),
        DesiredCase(
            "sha256-path-traversal",
            signed(document(sha="../../../../etc/passwd")),
            Refusal.MALFORMED,
        ),
        DesiredCase(
            "model-ref-path-traversal",
            signed(_with_hash(_edit(good, "spec.lines.0.serving.ref", "../../etc/passwd@1"))),
            Refusal.MALFORMED,
        ),
        DesiredCase(
            "line-key-path-traversal",
            signed(_with_hash(_edit(good, "spec.lines.0.line", "../../etc"))),
            Refusal.MALFORMED,
        ),
        DesiredCase(
            "huge-artifact-size-float",
            signed(_with_hash(_edit(good, "spec.lines.0.serving.artifact.size", 1e308))),
            Refusal.MALFORMED,
        ),
        DesiredCase(
            "zero-artifact-size",
            signed(_with_hash(_edit(good, "spec.lines.0.serving.artifact.size", 0))),
            Refusal.MALFORMED,
        ),
        DesiredCase(
            "replayed-older-generation", signed(document(HELD - 1)), Refusal.STALE, stateful=True
        ),
        DesiredCase("replayed-generation-one", signed(document(1)), Refusal.STALE, stateful=True),
        DesiredCase(
            "same-generation-other-content",
            signed(document(HELD, url="file:///srv/fleet/artifacts/other.onnx")),
            Refusal.GENERATION_CONFLICT,
            stateful=True,
        ),
    ]


def _edit(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    _set(path, value)(out)
    return out


DESIRED_CASES = _desired_cases()

# --- device -> reconciler --------------------------------------------------------------------


def reported(device: str = DEVICE, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "protocol": 1,
        "kind": "ReportedState",
        "site": SITE,
        "device": device,
        "at": "2026-11-21T23:55:34.120Z",
        "desired": None,
        "applied": None,
        "lines": [],
        "error": "",
    }
    return {**body, **changes}


def event(seq: int = 1, device: str = DEVICE, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "protocol": 1,
        "kind": "Event",
        "site": SITE,
        "device": device,
        "seq": seq,
        "at": "2026-11-21T23:57:02.001Z",
        "type": "override",
        "line": "plant/line-1",
        "generation": 6,
        "reason": "operator",
        "message": "",
        "details": {},
    }
    return {**body, **changes}


def _topic(channel: str, device: str = DEVICE, site: str = SITE) -> str:
    return f"linefleet/v1/{site}/{device}/{channel}"


def _b(doc: Any) -> bytes:
    return json.dumps(doc).encode()


class DeviceCase(NamedTuple):
    name: str
    topic: str
    payload: bytes
    rejection: str  # a `reconciler.service.observed.Rejection` value
    known_bug: str = ""


REPORTED, EVENTS, ONLINE = _topic("reported"), _topic("events"), _topic("online")

DEVICE_CASES: list[DeviceCase] = [
    DeviceCase("random-bytes", REPORTED, b"\x00\xff\xfe\x80", "malformed"),
    DeviceCase("not-json", EVENTS, b"seq=1", "malformed"),
    DeviceCase("json-array", REPORTED, b"[]", "malformed"),
    DeviceCase("nan", REPORTED, b'{"protocol": 1, "x": NaN}', "malformed"),
    DeviceCase("lone-surrogate-error", REPORTED, _b(reported(error="\ud800")), "malformed"),
    DeviceCase("lone-surrogate-message", EVENTS, _b(event(message="x\udfff")), "malformed"),
    DeviceCase("infinity", EVENTS, b'{"protocol": 1, "x": -Infinity}', "malformed"),
    DeviceCase(
        "deeply-nested-within-size",
        REPORTED,
        b'{"protocol": 1, "x": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
        "malformed",
    ),
    DeviceCase("oversize-reported", REPORTED, b" " * (MAX_REPORTED_BYTES + 1), "oversize"),
    DeviceCase("oversize-event", EVENTS, _b(event(message="x" * MAX_EVENT_BYTES)), "oversize"),
    DeviceCase("oversize-online", ONLINE, b"{" + b" " * 2048 + b"}", "oversize"),
    DeviceCase("protocol-2", REPORTED, _b(reported(protocol=2)), "unknown_protocol"),
    DeviceCase("protocol-missing", EVENTS, _b({"kind": "Event", "seq": 1}), "unknown_protocol"),
    DeviceCase(
        "protocol-true",
        ONLINE,
        _b({"protocol": True, "online": True}),
        "unknown_protocol",
    ),
    DeviceCase("protocol-float", ONLINE, _b({"protocol": 1.5, "online": True}), "unknown_protocol"),
    DeviceCase("seq-zero", EVENTS, _b(event(seq=0)), "malformed"),
    DeviceCase("seq-negative", EVENTS, _b(event(seq=-5)), "malformed"),
    DeviceCase("seq-string", EVENTS, _b(event(seq="7")), "malformed"),  # type: ignore[arg-type]
    DeviceCase("seq-float", EVENTS, _b(event(seq=7.0)), "malformed"),  # type: ignore[arg-type]
    DeviceCase("seq-beyond-64-bit", EVENTS, _b(event(seq=2**63)), "malformed"),
    DeviceCase(
        "seq-overflow-float", EVENTS, b'{"protocol":1,"kind":"Event","seq":1e999}', "malformed"
    ),
    DeviceCase("wrong-kind", REPORTED, _b(reported(kind="Event")), "malformed"),
    DeviceCase(
        "rate-above-one",
        REPORTED,
        _b(
            reported(
                lines=[
                    {
                        "line": "plant/line-1",
                        "phase": "serving",
                        "metrics": {"window_seconds": 1.0, "frames": 1, "error_rate": 7.0},
                    }
                ]
            )
        ),
        "malformed",
    ),
    DeviceCase(
        "unknown-phase",
        REPORTED,
        _b(reported(lines=[{"line": "plant/line-1", "phase": "exploded"}])),
        "malformed",
    ),
    DeviceCase("online-not-bool", ONLINE, _b({"protocol": 1, "online": "yes"}), "malformed"),
    DeviceCase("report-for-another-device", REPORTED, _b(reported(device=OTHER)), "topic_mismatch"),
    DeviceCase("event-for-another-device", EVENTS, _b(event(device=OTHER)), "topic_mismatch"),
    DeviceCase(
        "event-for-another-site", EVENTS, _b(event() | {"site": "dresden"}), "topic_mismatch"
    ),
    DeviceCase(
        "unknown-device", _topic("reported", "ghost-9"), _b(reported("ghost-9")), "unknown_device"
    ),
    DeviceCase("frames-on-json-path", _topic("frames"), b"LFF1", "foreign_topic"),
    DeviceCase("unknown-channel", _topic("commands"), b"{}", "foreign_topic"),
    DeviceCase("traversal-in-topic", "linefleet/v1/../etc/reported", b"{}", "foreign_topic"),
    DeviceCase("wildcard-device-id", "linefleet/v1/plant/+/reported", b"{}", "foreign_topic"),
    DeviceCase("upper-case-device", _topic("reported", "DEV-1"), b"{}", "foreign_topic"),
    DeviceCase("v2-topic", "linefleet/v2/plant/dev-1/reported", b"{}", "foreign_topic"),
]

KNOWN_DEVICES = {(SITE, DEVICE), (SITE, OTHER), ("dresden", DEVICE)}
