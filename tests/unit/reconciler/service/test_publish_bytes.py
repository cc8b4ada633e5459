"""Compiling and signing the fleet the fast way (shared parts dumped and encoded once, each
spec encoded once for its hash and its signature, half of a large fleet in a forked worker)
sends exactly the bytes the straightforward way does: pydantic's dump of each whole document,
hashed and signed on its own."""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator
from typing import Any

import pytest

from edge_puller.desired import to_target
from factory_sim import fleetgen
from linefleet_core.signing import SigningKey, canonical_json, content_hash, verify
from linefleet_core.spec import FleetSpec, load
from linefleet_core.validation import check
from linefleet_core.wire import Approval, DesiredState
from reconciler.service import publish as publish_module
from reconciler.service.compile import CompileError, compile_device, compile_fleet, encoded_spec
from reconciler.service.forkwork import spare_core
from reconciler.service.publish import LoadedRevision, compile_and_sign, sign_all
from tests.support import minifleet

KEY = SigningKey.generate()
BASE = "file:///srv/fleet"
COMMIT = "ab" * 20
APPROVAL = Approval(by="Jane Doe <jane@acme.example>", via="pull request #12", commit=COMMIT)
EXPIRES = "2026-12-03T12:00:00Z"


class _Files:
    label = "generated"

    def __init__(self, files: dict[str, bytes]) -> None:
        self.found = files

    def files(self) -> Iterator[tuple[str, bytes]]:
        for path in sorted(self.found):
            if path.endswith(".yaml"):
                yield path, self.found[path]


def generated(seed: int, cameras: int) -> FleetSpec:
    shape = fleetgen.FleetShape(
        sites=3, lines_per_site=6, cameras_per_line=cameras, devices_per_site=3, seed=seed
    )
    spec, findings = load(_Files(fleetgen.generate(shape)))
    findings += check(spec)
    assert [f for f in findings if f.severity == "error"] == []
    return spec


def with_novelty() -> FleetSpec:
    """The minifleet with a model contract v2 novelty model and issue 20's telemetry."""
    docs = minifleet.documents()
    version = minifleet._model_version(1, "surface-defects@2", ["ok", "scratch"])
    version |= {"task": "anomaly", "outputs": {"score": "score", "threshold": 2.5}}
    docs["fleet/models/surface-novelty.yaml"] = {
        "apiVersion": minifleet.API,
        "kind": "Model",
        "name": "surface-novelty",
        "versions": [version],
    }
    rollout = docs["fleet/sites/toledo/lines/line-1.yaml"]["rollout"]
    rollout["novelty"] = {"model": "surface-novelty", "version": 1}
    rollout["telemetry"] = {"uncertain_below": 0.5, "audit_rate": 0.02}
    spec, findings = minifleet.load_docs(docs)
    assert [f for f in findings if f.severity == "error"] == []
    return spec


def straightforward(
    docs: dict[str, DesiredState], expires_at: str | None = None
) -> dict[str, bytes]:
    """Each document dumped whole by pydantic, its hash checked, signed on its own."""
    out = {}
    for name, doc in docs.items():
        assert doc.content_hash == content_hash(doc.spec.model_dump(mode="json"))
        unset = {k for k in ("approval", "expires_at") if getattr(doc, k) is None}
        body = doc.model_dump(mode="json", exclude={"signature", *unset})
        if expires_at is not None:
            body["expires_at"] = expires_at
        out[name] = canonical_json(KEY.sign(body))
    return out


FLEETS: dict[str, Any] = {
    "minifleet": lambda: minifleet.load_docs(minifleet.documents())[0],
    "novelty": with_novelty,
    "generated-1-camera": lambda: generated(1, 1),
    "generated-3-cameras": lambda: generated(2, 3),
}


@pytest.mark.parametrize("name", sorted(FLEETS))
@pytest.mark.parametrize("approval", [None, APPROVAL])
@pytest.mark.parametrize("expires_at", [None, EXPIRES])
def test_the_fast_path_signs_the_bytes_of_the_straightforward_one(
    name: str, approval: Approval | None, expires_at: str | None
) -> None:
    spec = FLEETS[name]()
    docs = compile_fleet(spec, COMMIT, 7, BASE, approval)
    signed = sign_all(docs, KEY, expires_at)
    assert {d: s.payload for d, s in signed.items()} == straightforward(docs, expires_at)
    for device, s in signed.items():  # and each is what a device accepts
        doc = verify(s.payload, {KEY.key_id: KEY.public}, device=device)
        assert doc.approval == approval
        to_target(doc)


def test_documents_compiled_apart_are_the_documents_compiled_together() -> None:
    """Nothing leaks between devices through the parts one compile shares."""
    spec = generated(3, 2)
    together = compile_fleet(spec, COMMIT, 7, BASE)
    apart = {d: compile_device(spec, spec.devices[d], COMMIT, 7, BASE) for d in spec.devices}
    assert together == apart
    assert {d: s.payload for d, s in sign_all(together, KEY).items()} == {
        d: s.payload for d, s in sign_all(apart, KEY).items()
    }


def test_a_spec_is_encoded_once_and_forgotten_with_it() -> None:
    spec = minifleet.load_docs(minifleet.documents())[0]
    doc = next(iter(compile_fleet(spec, COMMIT, 7, BASE).values()))
    raw = encoded_spec(doc.spec)
    assert raw == canonical_json(doc.spec.model_dump(mode="json"))
    assert encoded_spec(doc.spec) is raw  # from memory, not encoded again
    copy = doc.spec.model_copy()  # equal, but another object: encoded on its own
    assert encoded_spec(copy) == raw and encoded_spec(copy) is not raw

    from reconciler.service import compile as module

    before = len(module._ENCODED)
    del doc, copy
    gc.collect()
    assert len(module._ENCODED) < before


needs_two_cores = pytest.mark.skipif(not spare_core(), reason="one core: no worker is forked")


@needs_two_cores
@pytest.mark.parametrize("expires_at", [None, EXPIRES])
def test_a_forked_worker_signs_half_with_the_same_bytes(expires_at: str | None) -> None:
    spec = generated(4, 2)
    revision = LoadedRevision(spec, COMMIT, 7, APPROVAL)
    docs, signed = compile_and_sign(revision, BASE, KEY, expires_at, worker_min=0)
    assert docs.built == len(spec.devices) // 2  # the worker compiled the other half
    serial = sign_all(compile_fleet(spec, COMMIT, 7, BASE, APPROVAL), KEY, expires_at)
    assert list(signed) == sorted(spec.devices) == list(docs)
    assert signed == serial  # the same documents, hashes and bytes, in the same order
    assert dict(docs) == compile_fleet(spec, COMMIT, 7, BASE, APPROVAL)  # compiled on reading


@needs_two_cores
def test_a_worker_out_of_time_is_killed_and_its_half_signed_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """(The worker dying is the same to this process: `forkwork.Forked.result` gives None.)"""
    spec = generated(5, 1)
    monkeypatch.setattr(publish_module, "WORKER_GRACE", -math.inf)  # no time left at all
    docs, signed = compile_and_sign(LoadedRevision(spec, COMMIT, 7), BASE, KEY, worker_min=0)
    assert docs.built == len(spec.devices)  # every document compiled here
    assert signed == sign_all(compile_fleet(spec, COMMIT, 7, BASE), KEY)


@needs_two_cores
def test_a_compile_error_in_the_worker_s_half_is_raised_here() -> None:
    spec = generated(6, 1)
    device = spec.devices[max(spec.devices)]
    broken = device.model_copy(
        update={"id": "zz-broken", "serves": [device.serves[0].model_copy(update={"line": "nope"})]}
    )
    spec.devices["zz-broken"] = broken  # sorts last: in the worker's half
    with pytest.raises(CompileError, match="zz-broken: serves unknown line"):
        compile_and_sign(LoadedRevision(spec, COMMIT, 7), BASE, KEY, worker_min=0)
