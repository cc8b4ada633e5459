"""What arrives between ticks becomes steps (`edge_puller/arrivals.py`), and the artifact store
answers for its own partial files (`ArtifactStore.partials`, `receive`)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from edge_puller import handrollback
from edge_puller.arrivals import arrived, failed, fell_back
from edge_puller.artifacts import ArtifactError, ArtifactStore
from edge_puller.engine import EngineEvent
from edge_puller.steps import (
    Download,
    HandRollback,
    LoadAndSmokeTest,
    RecordFailure,
    Report,
    Verify,
    Wait,
)
from tests.support.wiremodels import model_spec

SHA = "a" * 64
MODEL = model_spec("m@2", SHA, 10, "file:///m", ("ok", "scratch"), (1, 3, 32, 32))


def test_a_staging_step_that_fails_for_good_fails_its_model() -> None:
    refused = ArtifactError("hash-mismatch", "artifact sha256 is b…, expected a…")
    for step, event in ((Download(MODEL), "download-failed"), (Verify(MODEL, False), "download-failed"),
                        (LoadAndSmokeTest(MODEL), "fallback")):  # fmt: skip
        assert failed(step, refused) == RecordFailure(
            SHA,
            "hash-mismatch",
            "artifact sha256 is b…, expected a…",
            event,
            details={"model": "m@2", "sha256": SHA},
        )


def test_a_step_on_no_model_fails_nothing() -> None:
    for step in (Report(), Wait("waiting")):
        assert failed(step, ArtifactError("x", "y")) is None


def test_an_engine_fallback_fails_the_dropped_model_on_its_line() -> None:
    event = EngineEvent("fallback", "plant/line-1", "crashed", "cand@3 raised", "cand@3", SHA)
    assert fell_back(event) == RecordFailure(
        SHA,
        "crashed",
        "cand@3 raised",
        "fallback",
        line="plant/line-1",
        details={"model": "cand@3"},
    )


def test_rollback_requests_come_first_then_the_engine_events_in_order(tmp_path: Path) -> None:
    handrollback.drop_request(tmp_path, handrollback.Request("plant/line-2", "ana"))
    unreadable = handrollback.request_path(tmp_path, "plant/line-1")
    unreadable.write_bytes(b"{not json")
    events = [
        EngineEvent("fallback", "plant/line-1", r, "m", "cand@3", SHA) for r in ("one", "two")
    ]
    steps = arrived(tmp_path, events)
    assert steps[:2] == [
        HandRollback(unreadable, None),
        HandRollback(
            handrollback.request_path(tmp_path, "plant/line-2"),
            handrollback.Request("plant/line-2", "ana"),
        ),
    ]
    assert [s.reason for s in steps[2:] if isinstance(s, RecordFailure)] == ["one", "two"]
    assert arrived(tmp_path / "nothing-here", []) == []


def test_the_store_lists_its_partial_downloads_only(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "models", reserve_bytes=0)
    store.part_path(SHA).write_bytes(b"12345")
    (store.root / ("b" * 64)).write_bytes(b"whole")
    (store.root / "notes.part").write_bytes(b"not ours")
    assert store.partials() == {SHA: 5}
    assert store.present() == frozenset({"b" * 64})


def test_receive_keeps_a_model_only_when_its_sha256_matches(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "models", reserve_bytes=0)
    data = b"model bytes"
    sha = hashlib.sha256(data).hexdigest()
    store.receive(sha, len(data), io.BytesIO(data))
    assert store.has(sha) and store.partials() == {}
    other = "c" * 64
    with pytest.raises(ArtifactError, match=f"expected {other}"):
        store.receive(other, len(data), io.BytesIO(data))
    assert not store.has(other) and store.partials() == {}  # nothing half-kept
