"""Compiling the fleet into per-device desired states, and the publish planner (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from linefleet_core.signing import SigningKey, canonical_json, content_hash, verify
from linefleet_core.spec import FleetSpec
from reconciler.service.compile import (
    CompileError,
    compile_fleet,
    document_body,
    resolve_artifact_url,
)
from reconciler.service.publish import Signed, plan_publish, sign_all
from tests.support import minifleet

BASE = "file:///srv/fleet"
COMMIT = "ab" * 20


def fleet(mutate: Any = None) -> FleetSpec:
    docs = minifleet.documents()
    if mutate is not None:
        mutate(docs)
    spec, findings = minifleet.load_docs(docs)
    assert [f for f in findings if f.severity == "error"] == []
    return spec


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("file://artifacts/m.onnx", "file:///srv/fleet/artifacts/m.onnx"),
        ("artifacts/m.onnx", "file:///srv/fleet/artifacts/m.onnx"),
        ("./artifacts/../artifacts/m.onnx", "file:///srv/fleet/artifacts/m.onnx"),
        ("https://models.example/m.onnx", "https://models.example/m.onnx"),
    ],
)
def test_artifact_urls_become_absolute(url: str, expected: str) -> None:
    assert resolve_artifact_url(url, BASE + "/") == expected


@pytest.mark.parametrize(
    "url",
    [
        "s3://bucket/m.onnx",
        "../outside.onnx",
        "file:///opt/models/m.onnx",
        "file://localhost/opt/m.onnx",
        "http://models.example/m.onnx",
        "https://user:secret@models.example/m.onnx",
        "https:///m.onnx",
        "/abs/m.onnx",
    ],
)
def test_bad_artifact_urls(url: str) -> None:
    with pytest.raises(CompileError):
        resolve_artifact_url(url, BASE)


def test_one_document_per_device_with_its_lines_and_cameras() -> None:
    docs = compile_fleet(fleet(), COMMIT, 7, BASE)
    assert list(docs) == ["dresden-edge-1", "toledo-edge-1", "toledo-edge-2"]
    tol = docs["toledo-edge-1"]
    assert (tol.site, tol.generation, tol.commit) == ("toledo", 7, COMMIT)
    assert [ln.line for ln in tol.spec.lines] == ["toledo/line-1", "toledo/line-2"]
    line1 = tol.spec.lines[0]
    assert [c.id for c in line1.cameras] == ["cam-1", "cam-2"]
    assert line1.serving.ref == "surface-classifier@2"
    assert line1.serving.artifact.url == f"{BASE}/artifacts/surface-classifier-2.onnx"
    assert line1.previous is not None and line1.previous.ref == "surface-classifier@1"
    assert line1.candidate is not None and line1.candidate.stage == "shadow"
    assert line1.taxonomy.classes == ["ok", "scratch", "dust", "oil"]
    assert [c.id for c in tol.spec.lines[1].cameras] == ["cam-1"]
    canary = docs["dresden-edge-1"].spec.lines[0].candidate
    assert canary is not None and (canary.stage, canary.canary_fraction) == ("canary", 0.1)
    assert docs["dresden-edge-1"].spec.lines[1].serving.output_classes == [
        "ok",
        "scratch",
        "contamination",
    ]


def test_compile_is_deterministic_and_hash_ignores_generation() -> None:
    first = compile_fleet(fleet(), COMMIT, 7, BASE)
    again = compile_fleet(fleet(), COMMIT, 7, BASE)
    later = compile_fleet(fleet(), "cd" * 20, 8, BASE)
    for device, doc in first.items():
        assert canonical_json(document_body(doc)) == canonical_json(document_body(again[device]))
        assert doc.content_hash == later[device].content_hash
        assert doc.content_hash == content_hash(doc.spec.model_dump(mode="json"))


def test_a_line_change_changes_only_the_devices_serving_it() -> None:
    def promote(docs: dict[str, Any]) -> None:
        rollout = docs[minifleet.line_rel("toledo/line-1")]["rollout"]
        rollout.update(serving="surface-classifier@3", previous="surface-classifier@2")
        rollout.pop("candidate")

    before = compile_fleet(fleet(), COMMIT, 7, BASE)
    after = compile_fleet(fleet(promote), COMMIT, 8, BASE)
    changed = {d for d in before if before[d].content_hash != after[d].content_hash}
    assert changed == {"toledo-edge-1"}


def test_signed_documents_verify_on_a_device() -> None:
    key = SigningKey.generate()
    signed = sign_all(compile_fleet(fleet(), COMMIT, 7, BASE), key)
    doc = verify(signed["toledo-edge-2"].payload, {key.key_id: key.public}, device="toledo-edge-2")
    assert doc.spec.lines[0].line == "toledo/line-2"
    assert signed["toledo-edge-2"].topic == "linefleet/v1/toledo/toledo-edge-2/desired"


def _signed(device: str, hash_: str, generation: int = 5) -> Signed:
    return Signed("s", device, generation, hash_, b"{}")


def _retained(hash_: str, key_id: str = "k" * 16, generation: int = 5) -> bytes:
    return json.dumps(
        {"generation": generation, "content_hash": hash_, "signature": {"key_id": key_id}}
    ).encode()


def test_plan_publishes_only_what_differs_and_prunes_removed_devices() -> None:
    ours = {d: _signed(d, h) for d, h in [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]}
    retained = {
        "linefleet/v1/s/a/desired": _retained("1"),  # same content: unchanged
        "linefleet/v1/s/b/desired": _retained("x"),  # other content: publish
        "linefleet/v1/s/c/desired": _retained("3", key_id="o" * 16),  # old key: re-sign
        "linefleet/v1/s/gone/desired": _retained("9"),  # removed device: prune
        "linefleet/v1/s/cleared/desired": b"",  # already cleared: nothing to do
        "linefleet/v1/s/buried/desired": json.dumps({"kind": "Removed"}).encode(),  # tombstone
        "linefleet/v1/s/junk/reported": b"x",  # not a desired topic: not ours to prune
    }
    result = plan_publish(ours, retained, "k" * 16)
    assert [s.device for s in result.publish] == ["b", "c", "d"]
    assert [s.device for s in result.unchanged] == ["a"]
    assert result.prune == ("linefleet/v1/s/gone/desired",)
    assert result.stale == ()
    sent = [(m.topic, m.payload) for m in result.messages(lambda s, d: f"RIP {s}/{d}".encode())]
    assert sent[-3:] == [
        ("linefleet/v1/s/gone/desired", b"RIP s/gone"),  # a signed tombstone, never empty
        ("linefleet/v1/s/gone/reported", b""),  # its retained topics cleared
        ("linefleet/v1/s/gone/online", b""),
    ]


def test_plan_flags_a_publish_that_would_go_back_in_generation() -> None:
    ours = {"a": _signed("a", "new", generation=4)}
    result = plan_publish(
        ours, {"linefleet/v1/s/a/desired": _retained("old", generation=9)}, "k" * 16
    )
    assert result.stale == ((ours["a"], 9),)


def test_another_keys_huge_generation_does_not_block_the_publish() -> None:
    """After a rotation the retained forgery of a stolen key must be overwritten, not obeyed."""
    ours = {"a": _signed("a", "new", generation=4)}
    forged = _retained("evil", key_id="o" * 16, generation=2**62)
    result = plan_publish(ours, {"linefleet/v1/s/a/desired": forged}, "k" * 16)
    assert result.stale == ()
    assert [s.device for s in result.publish] == ["a"]


def test_plan_treats_garbage_on_the_broker_as_absent() -> None:
    ours = {"a": _signed("a", "1")}
    for junk in (b"\x00not json", b"[" * 100_000, b"[1]", b'{"generation": "x"}'):
        result = plan_publish(ours, {"linefleet/v1/s/a/desired": junk}, "k" * 16)
        assert [s.device for s in result.publish] == ["a"]


def test_two_publishers_with_one_key_produce_identical_bytes() -> None:
    key = SigningKey.generate()
    one = sign_all(compile_fleet(fleet(), COMMIT, 7, BASE), key)
    two = sign_all(compile_fleet(fleet(), COMMIT, 7, BASE), key)
    assert {d: s.payload for d, s in one.items()} == {d: s.payload for d, s in two.items()}


def test_plan_replaces_a_retained_document_that_does_not_verify() -> None:
    key = SigningKey.generate()
    signed = sign_all(compile_fleet(fleet(), COMMIT, 7, BASE), key)
    trusted = {key.key_id: key.public}
    retained = {s.topic: s.payload for s in signed.values()}
    assert plan_publish(signed, retained, key.key_id, trusted).publish == ()
    forged = json.loads(signed["toledo-edge-2"].payload)
    forged["generation"] = 999  # same content hash and key id, broken signature
    retained[signed["toledo-edge-2"].topic] = canonical_json(forged)
    result = plan_publish(signed, retained, key.key_id, trusted)
    assert [s.device for s in result.publish] == ["toledo-edge-2"]
    assert result.stale == ()  # a forged generation does not block the publish
