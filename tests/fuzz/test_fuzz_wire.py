"""Property-based fuzzing of every wire intake: total functions, documented refusals only.

- `linefleet_core.signing.verify` / `edge_puller.desired.accept` (the device's intake of desired
  documents) raise nothing but `VerifyError`, for any bytes, any JSON, any mutation of a valid
  signed document; a mutation made after signing is always refused.
- `reconciler.service.observed.classify` / `Observations.ingest` (the reconciler's intake of reported,
  events, online) never raise, on any topic, and deliver each event `seq` at most once, in
  increasing order.
- `linefleet_core.wire.decode_frame` raises nothing but `FrameError`.

Bounded (`max_examples`) so the whole file runs in seconds inside `make test`; raise
`LINEFLEET_FUZZ_EXAMPLES=5000` for a longer hunt.
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_puller.desired import accept
from linefleet_core.signing import Refusal, VerifyError, canonical_json, content_hash, verify
from linefleet_core.wire import FrameError, decode_frame
from reconciler.service.observed import Accepted, Observations, Rejected, classify
from tests.hostile import wire_corpus as wc

fuzz = settings(
    max_examples=int(os.environ.get("LINEFLEET_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

PINNED = {wc.KEY.key_id: wc.KEY.public}
GOOD = wc.document()
SIGNED = wc.KEY.sign(GOOD)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**40), max_value=10**400)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
topics = st.sampled_from([wc.REPORTED, wc.EVENTS, wc.ONLINE]) | st.builds(
    "linefleet/v1/{}/{}/{}".format,
    st.sampled_from(["plant", "dresden", "PLANT", "", "+", ".."]),
    st.sampled_from(["dev-1", "dev-2", "ghost", "#", "a/b"]),
    st.sampled_from(["reported", "events", "online", "desired", "frames", "x"]),
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a JSON document."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


PATHS = _paths(GOOD)


def _replace(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    node: Any = out
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return out


def _device_side(payload: bytes, held: bool = False) -> Refusal | None:
    """Run both device entry points; None if accepted, else the refusal (anything else raises)."""
    applied = wc.held() if held else None
    try:
        verify(payload, PINNED, device=wc.DEVICE, held=applied)
    except VerifyError as exc:
        try:
            accept(payload, PINNED, wc.DEVICE, applied)
        except VerifyError as again:
            assert again.reason is exc.reason
        else:
            raise AssertionError("accept() took what verify() refused") from None
        return exc.reason
    try:
        accept(payload, PINNED, wc.DEVICE, applied)
    except VerifyError as exc:  # the edge's own checks (classes vs taxonomy, input shape)
        assert exc.reason is Refusal.MALFORMED
        return exc.reason
    return None


@fuzz
@given(st.binary(max_size=2048))
def test_any_bytes_as_a_desired_state_are_refused(payload: bytes) -> None:
    assert _device_side(payload) is not None


@fuzz
@given(json_values)
def test_any_json_as_a_desired_state_is_refused(value: Any) -> None:
    assert _device_side(json.dumps(value).encode()) is not None


@fuzz
@given(st.sampled_from(PATHS), json_values)
def test_any_change_after_signing_is_refused(path: tuple[Any, ...], value: Any) -> None:
    forged = _replace(SIGNED, path, value)
    if forged == SIGNED:
        return
    assert _device_side(canonical_json(forged)) is not None


@fuzz
@given(st.sampled_from(PATHS), json_values, st.booleans())
def test_a_signed_mutation_is_accepted_or_refused_never_crashes(
    path: tuple[Any, ...], value: Any, rehash: bool
) -> None:
    doc = _replace(GOOD, path, value)
    if rehash and isinstance(doc.get("spec"), dict):
        doc["content_hash"] = content_hash(doc["spec"])
    try:
        payload = canonical_json(wc.KEY.sign(doc))
    except ValueError:  # not representable as canonical JSON (cannot be signed either)
        return
    _device_side(payload, held=True)


@fuzz
@given(st.integers(min_value=-(10**30), max_value=10**30))
def test_generations_below_the_held_one_are_refused_as_stale(generation: int) -> None:
    refusal = _device_side(wc.signed(wc.document(generation)), held=True)
    if generation < 1:
        assert refusal is Refusal.MALFORMED
    elif generation < wc.HELD:
        assert refusal is Refusal.STALE
    else:
        assert refusal is None


@fuzz
@given(topics, st.binary(max_size=1024) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_device_message_is_classified_never_raised(topic: str, payload: bytes) -> None:
    result = classify(topic, payload, wc.KNOWN_DEVICES)
    assert isinstance(result, Accepted | Rejected)
    obs = Observations()
    assert isinstance(obs.ingest(topic, payload, 0.0, wc.KNOWN_DEVICES), Accepted | Rejected)


@fuzz
@given(st.sampled_from([wc.REPORTED, wc.EVENTS]), st.sampled_from(sorted(wc.event())), json_values)
def test_a_mutated_report_or_event_is_classified_never_raised(
    topic: str, field: str, value: Any
) -> None:
    body = wc.reported() if topic == wc.REPORTED else wc.event()
    body[field] = value
    try:
        payload = json.dumps(body).encode()
    except ValueError:
        return
    assert isinstance(classify(topic, payload, wc.KNOWN_DEVICES), Accepted | Rejected)


@fuzz
@given(st.lists(st.integers(min_value=1, max_value=40), max_size=80))
def test_events_reach_consumers_at_most_once_and_in_order(seqs: list[int]) -> None:
    obs = Observations()
    delivered = []
    for seq in seqs:
        payload = json.dumps(wc.event(seq)).encode()
        if isinstance(obs.ingest(wc.EVENTS, payload, 0.0, wc.KNOWN_DEVICES), Accepted):
            delivered.append(seq)
    assert delivered == sorted(set(delivered))
    assert obs.rejections["duplicate_event"] == len(seqs) - len(delivered)


@fuzz
@given(st.binary(max_size=512) | st.binary(max_size=64).map(lambda b: b"LFF1" + b))
def test_any_frames_payload_decodes_or_is_refused(payload: bytes) -> None:
    try:
        decode_frame(payload)
    except FrameError:
        return
    raise AssertionError("random bytes decoded as a frame")
