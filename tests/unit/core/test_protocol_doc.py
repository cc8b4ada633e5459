"""docs/protocol.md and the code say the same: every refusal reason, and the edge cases a
client written from the document alone would otherwise have to guess."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from linefleet_core.highwater import floor
from linefleet_core.signing import Refusal, SigningKey, VerifyError, canonical_json, verify
from linefleet_core.wire import Applied, online_payload
from tests.unit.core.test_signing import KEY, TRUSTED, document, signed

DOC = Path(__file__).resolve().parents[3] / "docs" / "protocol.md"
CODE = re.compile(r"`([a-z]+(?:-[a-z]+)*)`")


def acceptance_section() -> str:
    """Section 4.1 (how a device accepts a desired state), up to the next section."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index("### 4.1")
    return text[start : text.index("\n## ", start)]


def test_the_documented_refusal_reasons_are_exactly_the_codes_devices_emit() -> None:
    section = acceptance_section()
    rows = section.splitlines()
    in_table = {
        m.group(1)
        for i, row in enumerate(rows)
        if row.startswith("| `") and any(r.startswith("|--") for r in rows[:i])  # not the header
        for m in [CODE.match(row.removeprefix("| "))]
        if m
    }
    in_steps = {m.group(1) for m in re.finditer(r"(?:refuse|\()\s*`([a-z-]+)`", section)}
    emitted = {reason.value for reason in Refusal}
    assert in_table == emitted
    assert in_steps <= emitted, in_steps - emitted


def _resigned(edit: Any) -> bytes:
    doc = json.loads(signed(document()))
    edit(doc)
    return canonical_json(doc)


def _without_protocol() -> bytes:
    doc = document()
    del doc["protocol"]
    return signed(doc)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (_without_protocol(), Refusal.UNSUPPORTED_PROTOCOL),
        (signed(document(protocol="1")), Refusal.UNSUPPORTED_PROTOCOL),
        (_resigned(lambda d: d.update(signature=None)), Refusal.UNSIGNED),
        (_resigned(lambda d: d.update(signature="ed25519:abc")), Refusal.BAD_SIGNATURE),
        (_resigned(lambda d: d["signature"].update(alg="rsa")), Refusal.BAD_SIGNATURE),
        (_resigned(lambda d: d["signature"].update(alg=None)), Refusal.BAD_SIGNATURE),
        (_resigned(lambda d: d["signature"].update(value="not base64!")), Refusal.BAD_SIGNATURE),
        (_resigned(lambda d: d["signature"].update(value="YWJj")), Refusal.BAD_SIGNATURE),
        (_resigned(lambda d: d["signature"].update(key_id=7)), Refusal.UNKNOWN_KEY),
    ],
    ids=[
        "missing protocol",
        "protocol as text",
        "signature null",
        "signature not an object",
        "bad alg",
        "no alg",
        "invalid base64",
        "base64 of no signature",
        "key_id not text",
    ],
)
def test_each_edge_case_of_section_4_1_gets_the_documented_code(
    payload: bytes, reason: Refusal
) -> None:
    with pytest.raises(VerifyError) as info:
        verify(payload, TRUSTED)
    assert info.value.reason is reason
    assert f"`{reason.value}`" in acceptance_section()


def test_the_newest_mark_at_one_generation_across_keys_is_the_last_key_id() -> None:
    other = SigningKey.generate()
    pinned = {KEY.key_id: KEY.public, other.key_id: other.public}
    one = Applied(generation=7, content_hash="1" * 64)
    two = Applied(generation=7, content_hash="2" * 64)
    marks = {KEY.key_id: one, other.key_id: two}
    last = max(KEY.key_id, other.key_id)
    assert floor(marks, pinned) == marks[last]
    assert floor(dict(reversed(list(marks.items()))), pinned) == marks[last]  # not dict order
    assert "sorts last" in acceptance_section()


def test_birth_and_will_are_the_payloads_every_section_names() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert json.loads(online_payload(True)) == {"online": True, "protocol": 1}
    assert json.loads(online_payload(False)) == {"online": False, "protocol": 1}
    named = set(re.findall(r'`(\{"online":[^`]*\})`', text))
    assert named <= {
        '{"online":true,"protocol":1}',
        '{"online":false,"protocol":1}',
        '{"agent":"linefleet-edge/0.1.0","online":true,"protocol":1}',
    }, named
    assert '{"online": true}' not in text


def test_the_base64_the_document_names_is_standard_and_padded() -> None:
    doc = json.loads(signed(document()))
    value = doc["signature"]["value"]
    assert len(base64.b64decode(value, validate=True)) == 64 and value.endswith("=")


def _first_codes(text: str, after: str, until: str) -> list[str]:
    start = text.index(after) + len(after)
    return re.findall(r"`([a-z_\[\].]+)`", text[start : text.index(until, start)])


def test_the_required_fields_of_reports_and_events_are_the_schemas() -> None:
    """A client written from the document once guessed which fields it could leave out or
    send as null, and its reports were dropped as malformed without a word."""
    from linefleet_core import wire

    text = " ".join(DOC.read_text(encoding="utf-8").split())
    schemas = wire.json_schemas()
    report, event = schemas["reported-state"], schemas["event"]
    assert _first_codes(text, "A report must have", ";") == report["required"]
    line = report["$defs"]["LineStatus"]["required"]
    assert _first_codes(text, "each `lines[]` entry must have", ";") == line
    metrics = report["$defs"]["LineMetrics"]["required"]
    assert _first_codes(text, "`metrics`, when present, must have", "(") == metrics
    section7 = text[text.index("## 7. Events") :]
    assert _first_codes(section7, "- Required:", ".") == event["required"]
    # What the document says may be null is nullable in the models, and what it says may not is not.
    nullable = _first_codes(text, "Everything else may be left out.", "may be `null`")
    not_null = _first_codes(text, "the text fields (", ")")
    status = wire.LineStatus.model_fields
    metric = wire.LineMetrics.model_fields
    for name in nullable:
        field = (wire.ReportedState.model_fields | status | metric)[name]
        assert field.annotation is not None and type(None) in getattr(
            field.annotation, "__args__", ()
        ), name
    for name in not_null:
        field = (wire.ReportedState.model_fields | status)[name.removeprefix("lines[].")]
        assert field.annotation is str, name
