"""Topics, frame envelopes, and the committed JSON Schemas of the wire messages."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from linefleet_core import wire
from linefleet_core.wire import Channel, FrameError, FrameMeta, Topic

ROOT = Path(__file__).resolve().parents[3]
SCHEMA_DIR = ROOT / "schema" / "wire"


def test_topics_round_trip() -> None:
    name = wire.topic("toledo", "tol-edge-01", Channel.DESIRED)
    assert name == "linefleet/v1/toledo/tol-edge-01/desired"
    assert wire.parse_topic(name) == Topic("toledo", "tol-edge-01", Channel.DESIRED)
    assert wire.topic_filter(Channel.REPORTED) == "linefleet/v1/+/+/reported"


@pytest.mark.parametrize(
    "name",
    [
        "linefleet/v2/toledo/d/desired",
        "linefleet/v1/toledo/d/shadow",
        "linefleet/v1/Toledo/d/desired",
        "linefleet/v1/toledo/d/desired/extra",
        "linefleet/v1/toledo/desired",
        "other/v1/toledo/d/desired",
    ],
)
def test_foreign_topics_are_not_ours(name: str) -> None:
    assert wire.parse_topic(name) is None


def meta(jpeg: bytes, **changes: object) -> FrameMeta:
    fields: dict[str, object] = {
        "protocol": 1,
        "kind": "Frame",
        "site": "toledo",
        "device": "tol-edge-01",
        "line": "toledo/line-1",
        "camera": "cam-1",
        "frame_id": "cam-1-000017",
        "captured_at": "2026-11-21T23:55:34.120Z",
        "reason": "defect",
        "model": "surface-classifier@2",
        "predicted": "scratch",
        "confidence": 0.93,
        "sha256": hashlib.sha256(jpeg).hexdigest(),
        "size": len(jpeg),
    }
    fields.update(changes)
    return FrameMeta.model_validate(fields)


def test_frames_round_trip() -> None:
    jpeg = b"\xff\xd8\xff\xe0 fake jpeg \xff\xd9"
    payload = wire.encode_frame(meta(jpeg), jpeg)
    got, image = wire.decode_frame(payload)
    assert image == jpeg
    assert got.frame_id == "cam-1-000017" and got.predicted == "scratch"


def test_bad_frames_are_refused_with_a_reason() -> None:
    jpeg = b"\xff\xd8 jpeg \xff\xd9"
    payload = wire.encode_frame(meta(jpeg), jpeg)
    with pytest.raises(FrameError, match="magic"):
        wire.decode_frame(b"JPEG" + payload[4:])
    with pytest.raises(FrameError, match="sha256"):
        wire.decode_frame(payload[:-1] + b"X")
    with pytest.raises(FrameError, match="past the end"):
        wire.decode_frame(payload[:8] + b"{}")
    with pytest.raises(FrameError, match="bad frame metadata"):
        wire.decode_frame(b"LFF1\x00\x00\x00\x02{}" + jpeg)


def test_online_payloads() -> None:
    assert json.loads(wire.online_payload(False)) == {"online": False, "protocol": 1}
    assert wire.Online.model_validate_json(wire.online_payload(True, "edge/1")).online


def test_committed_schemas_match_the_models() -> None:
    """Regenerate with LINEFLEET_REGENERATE=1 after changing `linefleet_core/wire.py`."""
    for name, schema in wire.json_schemas().items():
        path = SCHEMA_DIR / f"{name}.json"
        text = json.dumps(schema, indent=2, sort_keys=True) + "\n"
        if os.environ.get("LINEFLEET_REGENERATE"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        assert path.read_text(encoding="utf-8") == text, f"{path} is stale"


def _doc_examples() -> list[dict[str, object]]:
    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)```", text, flags=re.S)
    return [json.loads(block) for block in blocks]


def test_the_protocol_document_examples_validate_against_the_schemas() -> None:
    by_kind = {
        "DesiredState": "desired-state",
        "Removed": "removal",
        "ReportedState": "reported-state",
        "Event": "event",
    }
    examples = _doc_examples()
    assert {e["kind"] for e in examples} == set(by_kind)
    for example in examples:
        schema = json.loads((SCHEMA_DIR / f"{by_kind[str(example['kind'])]}.json").read_text())
        jsonschema.validate(example, schema)


@pytest.mark.parametrize("value", [True, 1.0, "1", 2])
def test_models_accept_only_the_integer_protocol(value: object) -> None:
    with pytest.raises(ValueError, match="protocol"):
        wire.Online.model_validate({"protocol": value, "online": True})


def _parse_topic_reference(name: str) -> Topic | None:
    """The straightforward reading `parse_topic` must agree with."""
    parts = name.split("/")
    if len(parts) != 5 or "/".join(parts[:2]) != wire.TOPIC_ROOT:
        return None
    try:
        channel = Channel(parts[4])
    except ValueError:
        return None
    if not all(re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", p) for p in parts[2:4]):
        return None
    return Topic(parts[2], parts[3], channel)


_PIECES = ["linefleet", "v1", "v2", "s", "a-b", "-a", "A", "a" * 63, "a" * 64, "", "é", "x\n"]


@given(
    st.lists(
        st.one_of(st.sampled_from(_PIECES + [c.value for c in Channel]), st.text(max_size=6)),
        min_size=1,
        max_size=7,
    )
)
def test_parse_topic_agrees_with_the_straightforward_reading(parts: list[str]) -> None:
    name = "/".join(parts)
    assert wire.parse_topic(name) == _parse_topic_reference(name)
    assert wire.parse_topic(f"linefleet/v1/{name}") == _parse_topic_reference(
        f"linefleet/v1/{name}"
    )
