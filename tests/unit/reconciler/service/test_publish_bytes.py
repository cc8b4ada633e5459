"""Compiling and signing the fleet the fast way (shared parts dumped and encoded once, each
spec encoded once for its hash and its signature, half of a large fleet in a forked worker)
sends exactly the bytes the straightforward way does: pydantic's dump of each whole document,
hashed and signed on its own."""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Iterator
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
from reconciler.service.publish import Compiled, LoadedRevision, compile_and_sign, sign_all
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
TRIES = 20


def big(seed: int) -> FleetSpec:
    """80 devices: enough that the worker starts before this process is through them, a
    device at a time (`WORKER_BATCH` 1)."""
    shape = fleetgen.FleetShape(
        sites=4, lines_per_site=20, cameras_per_line=1, devices_per_site=20, seed=seed
    )
    spec, findings = load(_Files(fleetgen.generate(shape)))
    assert [f for f in findings + check(spec) if f.severity == "error"] == []
    return spec


def until_the_worker(run: Callable[[], Compiled], did: Callable[[Compiled], bool]) -> Compiled:
    """`run()` until the worker took part as `did` says (it may start late on a busy machine)."""
    for _ in range(TRIES):
        out = run()
        if did(out):
            return out
    raise AssertionError(f"the worker did not take part in {TRIES} runs")


@needs_two_cores
@pytest.mark.parametrize("expires_at", [None, EXPIRES])
def test_a_forked_worker_signs_some_with_the_same_bytes(
    expires_at: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(publish_module, "WORKER_BATCH", 1)
    spec = big(4)
    revision = LoadedRevision(spec, COMMIT, 7, APPROVAL)
    out = until_the_worker(
        lambda: compile_and_sign(revision, BASE, KEY, expires_at, worker_min=0),
        lambda out: out.by_worker > 0,
    )
    assert out.docs.built == len(spec.devices) - out.by_worker  # the rest: the worker's
    assert out.redone == 0
    serial = sign_all(compile_fleet(spec, COMMIT, 7, BASE, APPROVAL), KEY, expires_at)
    assert list(out.signed) == sorted(spec.devices) == list(out.docs)
    assert out.signed == serial  # the same documents, hashes and bytes, in the same order
    assert dict(out.docs) == compile_fleet(spec, COMMIT, 7, BASE, APPROVAL)  # read: compiled


@needs_two_cores
def test_a_worker_out_of_time_is_killed_and_what_it_took_signed_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """(A worker that dies is the same to this process: `forkwork.Forked.result` gives None.)"""
    monkeypatch.setattr(publish_module, "WORKER_BATCH", 1)
    monkeypatch.setattr(publish_module, "WORKER_GRACE", -math.inf)  # no time left at all
    spec = big(5)
    out = until_the_worker(
        lambda: compile_and_sign(LoadedRevision(spec, COMMIT, 7), BASE, KEY, worker_min=0),
        lambda out: out.redone > 0,
    )
    assert out.by_worker == 0
    assert out.docs.built == len(spec.devices)  # every document compiled here
    assert out.signed == sign_all(compile_fleet(spec, COMMIT, 7, BASE), KEY)


@needs_two_cores
@pytest.mark.parametrize("broken", ["zz-broken", "aa-broken"])
def test_a_compile_error_on_either_side_is_raised_here(
    broken: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Last in id order: the worker's first (or this process's last); first: this process's
    first, with the worker running."""
    monkeypatch.setattr(publish_module, "WORKER_BATCH", 1)
    spec = big(6)
    device = spec.devices[max(spec.devices)]
    serves = [device.serves[0].model_copy(update={"line": "nope"})]
    spec.devices[broken] = device.model_copy(update={"id": broken, "serves": serves})
    for _ in range(3):
        with pytest.raises(CompileError, match=f"{broken}: serves unknown line"):
            compile_and_sign(LoadedRevision(spec, COMMIT, 7), BASE, KEY, worker_min=0)
