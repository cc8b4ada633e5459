"""What a full publish reads on a broker that hides retained messages from wildcards
(`reconciler.service.publish.exact_topics`): its own devices, the marker, then the devices of
every commit the marker or a retained document names, each commit once."""

from __future__ import annotations

import json
import time

from linefleet_core.mqttsession import Message
from linefleet_core.signing import SigningKey
from reconciler.service.marker import MARKER_TOPIC, Marker
from reconciler.service.publish import Signed, exact_topics

KEY = SigningKey.generate()
NEW, OLD, OLDER = "a" * 40, "b" * 40, "c" * 40
FLEETS = {
    OLD: ["linefleet/v1/s/x/desired", "linefleet/v1/s/gone/desired"],
    OLDER: ["linefleet/v1/s/ancient/desired"],
}


def msg(topic: str, payload: bytes) -> Message:
    return Message(topic, payload, True, time.time())


def doc(topic: str, commit: str) -> Message:
    return msg(topic, json.dumps({"generation": 1, "commit": commit}).encode())


def test_commits_named_by_the_marker_and_documents_add_their_devices_once() -> None:
    asked: list[str] = []

    def known_at(commit: str) -> list[str]:
        asked.append(commit)
        return FLEETS.get(commit, [])

    signed = {"x": Signed("s", "x", 3, "h", b"{}")}
    expand = exact_topics(signed, NEW, KEY, known_at)
    first = expand({})
    assert first == ["linefleet/v1/s/x/desired", MARKER_TOPIC]
    marker = Marker(OLD, 2, KEY.key_id, "file:///r", None).payload(KEY)
    found = {MARKER_TOPIC: msg(MARKER_TOPIC, marker), first[0]: doc(first[0], OLD)}
    second = expand(found)
    assert set(second) == {*first, *FLEETS[OLD]}
    found["linefleet/v1/s/gone/desired"] = doc("linefleet/v1/s/gone/desired", OLDER)
    third = expand(found)
    assert set(third) == {*second, *FLEETS[OLDER]}
    assert expand(found) == third and asked == [OLD, OLDER]  # each commit read once


def test_a_marker_of_another_key_and_unreadable_documents_name_nothing() -> None:
    other = SigningKey.generate()
    marker = Marker(OLD, 2, other.key_id, "file:///r", None).payload(other)
    signed = {"x": Signed("s", "x", 3, "h", b"{}")}
    expand = exact_topics(signed, NEW, KEY, FLEETS.get)  # type: ignore[arg-type]
    found = {
        MARKER_TOPIC: msg(MARKER_TOPIC, marker),
        "linefleet/v1/s/x/desired": msg("linefleet/v1/s/x/desired", b"not json"),
        "linefleet/v1/s/y/desired": doc("linefleet/v1/s/y/desired", NEW),  # this commit
    }
    assert expand(found) == ["linefleet/v1/s/x/desired", MARKER_TOPIC]
