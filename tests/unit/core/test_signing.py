"""Signing and verification: every refusal reason, key pinning, canonical bytes."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linefleet_core.errors import UsageError
from linefleet_core.signing import (
    Refusal,
    SigningKey,
    VerifyError,
    canonical_json,
    canonical_with,
    content_hash,
    load_trusted_keys,
    verified,
    verify,
)
from linefleet_core.wire import MAX_DESIRED_BYTES, Applied

KEY = SigningKey.generate()
TRUSTED = {KEY.key_id: KEY.public}


def spec() -> dict[str, Any]:
    model = {
        "ref": "surface-classifier@2",
        "artifact": {"url": "file:///srv/a.onnx", "sha256": "a" * 64, "size": 10},
        "input": {"shape": [1, 3, 32, 32], "color": "rgb"},
        "output_classes": ["ok", "scratch"],
        "opset": 17,
        "reference_stats": {"brightness": 0.5},
    }
    return {
        "heartbeat_seconds": 60,
        "lines": [
            {
                "line": "toledo/line-1",
                "cameras": [{"id": "cam-1", "fps": 10.0, "width": 640, "height": 480}],
                "taxonomy": {"ref": "surface-defects@1", "classes": ["ok", "scratch"]},
                "serving": model,
                "candidate": None,
                "previous": None,
                "telemetry": {
                    "uncertainty_band": [0.35, 0.65],
                    "daily_upload_budget_mb": 50.0,
                    "spool_mb": 500.0,
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
        ],
    }


def document(generation: int = 3, **overrides: Any) -> dict[str, Any]:
    body = spec()
    doc = {
        "protocol": 1,
        "kind": "DesiredState",
        "site": "toledo",
        "device": "tol-edge-01",
        "generation": generation,
        "commit": "c" * 40,
        "content_hash": content_hash(body),
        "spec": body,
    }
    doc.update(overrides)
    return doc


def signed(doc: dict[str, Any], key: SigningKey = KEY) -> bytes:
    return canonical_json(key.sign(doc))


def refusal(payload: bytes, **kwargs: Any) -> Refusal:
    with pytest.raises(VerifyError) as info:
        verify(payload, TRUSTED, **kwargs)
    return info.value.reason


def test_a_signed_document_verifies_and_round_trips() -> None:
    doc = verify(signed(document()), TRUSTED, device="tol-edge-01")
    assert doc.generation == 3
    assert doc.signature is not None and doc.signature.key_id == KEY.key_id
    assert doc.spec.lines[0].serving.ref == "surface-classifier@2"


def test_verified_gives_the_typed_document_and_the_object_as_received() -> None:
    payload = signed({**document(), "added_later": {"x": 1}})
    checked = verified(payload, TRUSTED, device="tol-edge-01")
    assert checked.raw == json.loads(payload)  # unknown fields kept: what was signed
    assert checked.document == verify(payload, TRUSTED, device="tol-edge-01")


def test_a_refusal_names_the_generation_the_payload_claims() -> None:
    with pytest.raises(VerifyError) as stale:
        verified(signed(document(2)), TRUSTED, held=Applied(generation=3, content_hash="0" * 64))
    assert (stale.value.reason, stale.value.generation) == (Refusal.STALE, 2)
    with pytest.raises(VerifyError) as forged:
        verified(signed(document(7), SigningKey.generate()), TRUSTED)
    assert (forged.value.reason, forged.value.generation) == (Refusal.UNKNOWN_KEY, 7)
    for junk in (b"{not json", b"[7]", canonical_json({"generation": True})):
        with pytest.raises(VerifyError) as unreadable:
            verified(junk, TRUSTED)
        assert unreadable.value.generation is None


def test_canonical_json_is_sorted_compact_utf8_and_refuses_nan() -> None:
    assert canonical_json({"b": 1, "a": [1.0, "é"]}) == '{"a":[1.0,"é"],"b":1}'.encode()
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_content_hash_ignores_generation_and_commit() -> None:
    one = json.loads(signed(document(generation=3)))
    two = json.loads(signed(document(generation=9, commit="d" * 40)))
    assert one["content_hash"] == two["content_hash"]


def test_signature_survives_a_json_round_trip_with_reordered_keys() -> None:
    pretty = json.dumps(json.loads(signed(document())), indent=2).encode()
    assert verify(pretty, TRUSTED).generation == 3


def test_unknown_fields_are_signed_and_ignored() -> None:
    payload = signed(document(future_field={"x": 1}))
    assert verify(payload, TRUSTED).device == "tol-edge-01"
    tampered = json.loads(payload)
    tampered["future_field"] = {"x": 2}
    assert refusal(canonical_json(tampered)) is Refusal.BAD_SIGNATURE


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe", Refusal.MALFORMED),
        (b"[1, 2]", Refusal.MALFORMED),
        (b'{"protocol": NaN}', Refusal.MALFORMED),
        (b'{"a":' * 20_000 + b"1" + b"}" * 20_000, Refusal.MALFORMED),  # nesting too deep
        (b" " * (MAX_DESIRED_BYTES + 1), Refusal.OVERSIZE),
        (canonical_json(document()), Refusal.UNSIGNED),
        (signed(document(protocol=2)), Refusal.UNSUPPORTED_PROTOCOL),
        (signed(document(protocol=True)), Refusal.UNSUPPORTED_PROTOCOL),
        (signed(document(protocol=1.0)), Refusal.UNSUPPORTED_PROTOCOL),
        (signed(document(), SigningKey.generate()), Refusal.UNKNOWN_KEY),
        (signed(document(content_hash="0" * 64)), Refusal.CONTENT_HASH_MISMATCH),
        (signed(document(generation=0)), Refusal.MALFORMED),
        (signed(document(generation="3")), Refusal.MALFORMED),  # type: ignore[arg-type]
    ],
)
def test_refusals(payload: bytes, reason: Refusal) -> None:
    assert refusal(payload) is reason


def test_a_changed_byte_breaks_the_signature() -> None:
    doc = json.loads(signed(document()))
    doc["spec"]["lines"][0]["serving"]["artifact"]["size"] = 11
    assert refusal(canonical_json(doc)) is Refusal.BAD_SIGNATURE
    doc = json.loads(signed(document()))
    doc["signature"]["value"] = base64.b64encode(b"\0" * 64).decode()
    assert refusal(canonical_json(doc)) is Refusal.BAD_SIGNATURE
    doc["signature"]["value"] = "not base64!"
    assert refusal(canonical_json(doc)) is Refusal.BAD_SIGNATURE


def test_wrong_device_and_freshness() -> None:
    payload = signed(document(generation=5))
    hash_ = json.loads(payload)["content_hash"]
    assert refusal(payload, device="other") is Refusal.WRONG_DEVICE
    assert refusal(payload, held=Applied(generation=6, content_hash=hash_)) is Refusal.STALE
    conflict = Applied(generation=5, content_hash="f" * 64)
    assert refusal(payload, held=conflict) is Refusal.GENERATION_CONFLICT
    assert verify(payload, TRUSTED, held=Applied(generation=5, content_hash=hash_))
    assert verify(payload, TRUSTED, held=Applied(generation=4, content_hash="f" * 64))


def test_rotation_pins_several_keys(tmp_path: Path) -> None:
    old, new = SigningKey.generate(), SigningKey.generate()
    old.write(tmp_path / "old")
    new.write(tmp_path / "new")
    pub_old = next((tmp_path / "old").glob("*.pub"))
    both = load_trusted_keys([pub_old, tmp_path / "new"])
    assert set(both) == {old.key_id, new.key_id}
    for key in (old, new):
        assert verify(signed(document(), key), both).generation == 3
    only_new = load_trusted_keys([tmp_path / "new"])
    with pytest.raises(VerifyError):
        verify(signed(document(), old), only_new)


def test_key_files_round_trip_and_are_never_overwritten(tmp_path: Path) -> None:
    key = SigningKey.generate()
    private, public = key.write(tmp_path)
    assert private.stat().st_mode & 0o777 == 0o600
    assert public.name == f"{key.key_id}.pub"
    assert SigningKey.load(private).key_id == key.key_id
    with pytest.raises(UsageError, match="refusing to overwrite"):
        SigningKey.generate().write(tmp_path)
    with pytest.raises(UsageError, match="not an unencrypted PEM"):
        SigningKey.load(public)


def test_signing_key_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key = SigningKey.generate()
    private, _ = key.write(tmp_path)
    monkeypatch.setenv("LINEFLEET_SIGNING_KEY", private.read_text())
    assert SigningKey.load(None).key_id == key.key_id
    monkeypatch.delenv("LINEFLEET_SIGNING_KEY")
    with pytest.raises(UsageError, match="no signing key"):
        SigningKey.load(None)


@settings(max_examples=200, deadline=None)
@given(
    junk=st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
            lambda kids: (
                st.lists(kids, max_size=4)
                | st.dictionaries(
                    st.sampled_from(["protocol", "signature", "spec", "key_id", "alg", "x"]),
                    kids,
                    max_size=4,
                )
            ),
            max_leaves=25,
        ).map(lambda v: json.dumps(v).encode()),
    )
)
def test_verify_never_raises_anything_but_a_refusal(junk: bytes) -> None:
    with pytest.raises(VerifyError):
        verify(junk, TRUSTED)


def test_a_signed_expiry_is_checked_at_the_receivers_clock() -> None:
    import datetime as dt

    from linefleet_core.signing import Refusal, SigningKey, VerifyError, canonical_json, verify
    from reconciler.service.compile import document_body
    from reconciler.service.publish import expiry, sign_all
    from tests.unit.reconciler.service.test_fleetstatus import desired

    key = SigningKey.generate()
    doc = desired()
    assert "expires_at" not in document_body(doc)  # no bound: the bytes read as they always did
    at = expiry(1_000_000.0, 60.0)
    assert at == "1970-01-12T13:47:30Z"  # in (now + 30 s, now + 60 s], on a 30 s grid
    assert expiry(1_000_019.0, 60.0) == at and expiry(1_000_021.0, 60.0) != at
    payload = sign_all({doc.device: doc}, key, at)[doc.device].payload
    trusted = {key.key_id: key.public}
    bound = dt.datetime(1970, 1, 12, 13, 47, 30, tzinfo=dt.UTC).timestamp()
    assert verify(payload, trusted, now=bound).expires_at is not None
    assert verify(payload, trusted).generation == doc.generation  # no clock: not judged
    with pytest.raises(VerifyError) as refused:
        verify(payload, trusted, now=bound + 1)
    assert refused.value.reason is Refusal.EXPIRED
    moved = json.loads(payload)
    moved["expires_at"] = "2099-01-01T00:00:00Z"  # extended after signing
    with pytest.raises(VerifyError, match="bad-signature"):
        verify(canonical_json(moved), trusted, now=bound + 1)


@pytest.mark.parametrize(
    "doc",
    [
        {"spec": {"b": [1, 2.5, "é"], "a": None}, "kind": "DesiredState", "generation": 3},
        {"kind": "Removed", "zeta": {"x": "\u2028"}, "signature": {"stale": True}},
        {"spec": [], "aaa": 1, "zzz": {"nested": {"k": "v"}}},
    ],
)
def test_signed_payload_is_the_canonical_signed_document(doc: dict[str, Any]) -> None:
    key = SigningKey.generate()
    assert key.signed_payload(doc, "spec") == canonical_json(key.sign(doc))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(["spec", "kind", "a", "ß", "zz"]), JSON, max_size=5))
def test_signed_payload_matches_for_any_document(doc: dict[str, Any]) -> None:
    key = SIGNED_PAYLOAD_KEY
    assert key.signed_payload(doc, "spec") == canonical_json(key.sign(doc))


SIGNED_PAYLOAD_KEY = SigningKey.generate()


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["spec", "kind", "a", "ß", "zz", ""]), JSON, max_size=5),
    st.sets(st.sampled_from(["spec", "kind", "a", "ß", "zz", ""])),
)
def test_canonical_with_spliced_members_is_the_canonical_json(
    doc: dict[str, Any], spliced: set[str]
) -> None:
    encoded = {k: canonical_json(doc[k]) for k in spliced if k in doc}
    rest = {k: v for k, v in doc.items() if k not in encoded}
    assert canonical_with(rest, encoded) == canonical_json(doc)
