"""Classifying device messages: every kind of bad input is counted, none raises."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.service.observed import Accepted, Observations, Rejected, Rejection, classify

REPORTED = "linefleet/v1/toledo/edge-1/reported"
EVENTS = "linefleet/v1/toledo/edge-1/events"


def reported(**changes: Any) -> bytes:
    doc: dict[str, Any] = {
        "protocol": 1,
        "kind": "ReportedState",
        "site": "toledo",
        "device": "edge-1",
        "at": "2026-11-21T10:00:00Z",
        "applied": {"generation": 3, "content_hash": "a" * 64},
        "lines": [{"line": "toledo/line-1", "phase": "serving", "serving": "m@1"}],
    }
    doc.update(changes)
    return json.dumps(doc).encode()


def event(seq: int, **changes: Any) -> bytes:
    doc: dict[str, Any] = {
        "protocol": 1,
        "kind": "Event",
        "site": "toledo",
        "device": "edge-1",
        "seq": seq,
        "at": "2026-11-21T10:00:00Z",
        "type": "activation",
    }
    doc.update(changes)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (REPORTED, b"{not json", Rejection.MALFORMED),
        (REPORTED, b"\xff\xfe", Rejection.MALFORMED),
        (REPORTED, b"[]", Rejection.MALFORMED),
        (REPORTED, b'{"protocol": 1, "x": NaN}', Rejection.MALFORMED),
        (REPORTED, reported(lines="oops"), Rejection.MALFORMED),
        (REPORTED, reported(protocol=2), Rejection.UNKNOWN_PROTOCOL),
        (REPORTED, reported(protocol=True), Rejection.UNKNOWN_PROTOCOL),
        (REPORTED, reported(protocol=1.0), Rejection.UNKNOWN_PROTOCOL),
        (REPORTED, reported(at="yesterday"), Rejection.MALFORMED),
        (REPORTED, b"x" * (64 * 1024 + 1), Rejection.OVERSIZE),
        (REPORTED, reported(device="edge-2"), Rejection.TOPIC_MISMATCH),
        ("linefleet/v1/nowhere/ghost/reported", reported(), Rejection.UNKNOWN_DEVICE),
        ("linefleet/v9/toledo/edge-1/reported", reported(), Rejection.FOREIGN_TOPIC),
        ("linefleet/v1/toledo/edge-1/frames", b"LFF1", Rejection.FOREIGN_TOPIC),
        (EVENTS, event(0), Rejection.MALFORMED),
        (REPORTED, b"[" * 30_000 + b"]" * 30_000, Rejection.MALFORMED),  # nesting too deep
    ],
)
def test_rejections(topic: str, payload: bytes, reason: Rejection) -> None:
    result = classify(topic, payload, {("toledo", "edge-1")})
    assert isinstance(result, Rejected), result
    assert result.reason is reason


def test_unknown_fields_and_event_types_are_accepted() -> None:
    result = classify(REPORTED, reported(newer_field={"x": 1}))
    assert isinstance(result, Accepted)
    result = classify(EVENTS, event(1, type="something-new"))
    assert isinstance(result, Accepted)


def test_duplicate_events_are_dropped_and_counted() -> None:
    obs = Observations()
    for seq in (1, 2, 2, 1, 3):
        obs.ingest(EVENTS, event(seq), 100.0)
    device = obs.devices["toledo/edge-1"]
    assert [e.seq for e in device.events] == [1, 2, 3]
    assert obs.rejections["duplicate_event"] == 2


def test_last_seen_is_capped_by_arrival_and_a_replay_is_not_news() -> None:
    obs = Observations()
    future = reported(at="2030-01-01T00:00:00Z")
    obs.ingest(REPORTED, future, received=1000.0, live=False)
    assert obs.devices["toledo/edge-1"].last_seen == 1000.0
    obs = Observations()
    obs.ingest(REPORTED, reported(), received=2e9, live=False)
    at = dt.datetime(2026, 11, 21, 10, tzinfo=dt.UTC).timestamp()
    assert obs.devices["toledo/edge-1"].last_seen == at


def test_an_empty_retained_report_clears_it() -> None:
    obs = Observations()
    obs.ingest(REPORTED, reported(), 1.0)
    obs.ingest(REPORTED, b"", 2.0)
    assert obs.devices["toledo/edge-1"].reported is None


@settings(max_examples=300, deadline=None)
@given(
    channel=st.sampled_from(["reported", "events", "online", "desired", "frames", "x"]),
    payload=st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
            lambda kids: (
                st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
            ),
            max_leaves=20,
        ).map(lambda v: json.dumps(v).encode()),
    ),
)
def test_no_input_crashes_ingest(channel: str, payload: bytes) -> None:
    obs = Observations()
    result = obs.ingest(f"linefleet/v1/toledo/edge-1/{channel}", payload, 1.0)
    assert isinstance(result, Accepted | Rejected)


ONLINE_PAYLOADS = [
    b'{"online":true,"protocol":1}',
    b'{"online": false, "protocol": 1, "agent": "edge/1"}',
    b'{"online":true,"protocol":1,"extra":[1,2]}',
    b'{"online":true,"protocol":true}',
    b'{"online":"yes","protocol":1}',
    b'{"online":true,"protocol":1,"x":NaN}',
    b"\xef\xbb\xbf" + b'{"online":true,"protocol":1}',
    b"[]",
]


@pytest.mark.parametrize("payload", ONLINE_PAYLOADS)
def test_an_online_payload_seen_before_is_classified_as_the_first_time(payload: bytes) -> None:
    """Births repeat byte for byte across devices and are accepted from memory the second
    time; the result must be what parsing them gives, on every topic, stranger or not."""
    from reconciler.service import observed

    topics = [f"linefleet/v1/toledo/edge-{n}/online" for n in range(3)]
    known = {("toledo", "edge-0"), ("toledo", "edge-1")}
    fresh = []
    for name in topics:
        observed._ONLINE_SEEN.clear()
        fresh.append(classify(name, payload, known))
    observed._ONLINE_SEEN.clear()
    again = [classify(name, payload, known) for name in topics * 2]
    assert again == fresh * 2
    assert isinstance(again[2], Rejected) and again[2].reason is Rejection.UNKNOWN_DEVICE
    assert len(observed._ONLINE_SEEN) <= observed.ONLINE_KEPT
