"""The agent end to end without a broker: real models, real files, signed documents."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_puller.agent import Agent
from edge_puller.localstatus import local_status, render_text
from edge_puller.outbox import Outbox
from edge_puller.planner import RETIRED_SPOOL_GRACE
from edge_puller.report import build_report
from linefleet_core.signing import SigningKey
from linefleet_core.wire import Event, ModelSpec, ReportedState
from tests.support.wiremodels import model_spec
from tests.unit.edge.documents import LINE, desired, line_doc
from tests.unit.edge.helpers import spec_for

BRIGHT = np.full((48, 64, 3), 220, dtype=np.uint8)
KEY = SigningKey.generate()


def _agent(state_dir: Path) -> Agent:
    """An agent whose only artifact root is `src` next to its state (where `models` live)."""
    roots = [state_dir.parent / "src"]
    return Agent("plant", "dev-1", state_dir, {KEY.key_id: KEY.public}, file_roots=roots)


def _drain(outbox: Outbox) -> list[tuple[str, dict[str, object]]]:
    found = []
    while (message := outbox.first()) is not None:
        found.append((message.topic.rsplit("/", 1)[1], json.loads(message.payload)))
        outbox.ack(message.id)
    return found


def _events(agent: Agent) -> list[Event]:
    return [Event.model_validate(body) for ch, body in _drain(agent.outbox) if ch == "events"]


def _converge(agent: Agent, ticks: int = 5) -> None:
    for _ in range(ticks):
        agent.tick()


@pytest.fixture
def models(tmp_path: Path) -> dict[str, ModelSpec]:
    return {
        "m1": spec_for(tmp_path / "src", "inc", 1),
        "m2": spec_for(tmp_path / "src", "cand", 2, invert=True),
        "crashy": spec_for(tmp_path / "src", "crashy", 3, crash_above=0.7),
    }


def test_converges_to_a_signed_desired_state(tmp_path: Path, models: dict[str, ModelSpec]) -> None:
    agent = _agent(tmp_path / "state")
    agent.offer_desired(desired(KEY, 1, line_doc(models["m1"])))
    _converge(agent)
    assert agent.serve("cam-1", "f1", BRIGHT).model == "inc@1"
    assert agent.state.applied_generation == 1
    messages = _drain(agent.outbox)
    events = [Event.model_validate(b) for ch, b in messages if ch == "events"]
    assert [(e.type, e.seq) for e in events] == [("activation", 1)]
    reports = [ReportedState.model_validate(b) for ch, b in messages if ch == "reported"]
    last = reports[-1]
    assert last.applied is not None and last.applied.generation == 1
    assert [(ln.line, ln.phase, ln.serving) for ln in last.lines] == [(LINE, "serving", "inc@1")]


def test_restart_serves_from_local_state_without_any_broker(
    tmp_path: Path, models: dict[str, ModelSpec]
) -> None:
    first = _agent(tmp_path / "state")
    first.offer_desired(desired(KEY, 1, line_doc(models["m1"])))
    _converge(first)
    first.outbox.close()
    again = _agent(tmp_path / "state")  # no desired state offered: offline
    assert again.serve("cam-1", "f0", BRIGHT).label is None  # nothing loaded yet
    again.tick()
    decision = again.serve("cam-1", "f1", BRIGHT)
    assert (decision.model, decision.label) == ("inc@1", "ok")


@pytest.mark.parametrize(
    ("payload_of", "reason"),
    [
        (lambda m: desired(None, 2, line_doc(m)), "unsigned"),
        (lambda m: desired(SigningKey.generate(), 2, line_doc(m)), "unknown-key"),
        (lambda m: desired(KEY, 1, line_doc(m), heartbeat_seconds=5), "generation-conflict"),
        (lambda m: b'{"protocol": 1, "generation": 7', "malformed"),
        (lambda m: desired(KEY, 2, line_doc(m), device="dev-2"), "wrong-device"),
    ],
)
def test_bad_documents_are_refused_and_the_incumbent_keeps_serving(
    tmp_path: Path, models: dict[str, ModelSpec], payload_of: object, reason: str
) -> None:
    agent = _agent(tmp_path / "state")
    agent.offer_desired(desired(KEY, 1, line_doc(models["m1"])))
    _converge(agent)
    _drain(agent.outbox)
    before = agent.state
    agent.offer_desired(payload_of(models["m2"]))  # type: ignore[operator]
    _converge(agent, 2)
    (event,) = _events(agent)
    assert (event.type, event.reason) == ("refused-document", reason)
    assert agent.state.target == before.target and agent.state.generation == 1
    assert agent.serve("cam-1", "f", BRIGHT).model == "inc@1"


def test_forged_signature_is_refused(tmp_path: Path, models: dict[str, ModelSpec]) -> None:
    agent = _agent(tmp_path / "state")
    payload = json.loads(desired(KEY, 1, line_doc(models["m1"])))
    payload["spec"]["heartbeat_seconds"] = 5  # tampered after signing
    agent.offer_desired(json.dumps(payload).encode())
    agent.tick()
    (event,) = _events(agent)
    assert event.reason == "bad-signature"
    assert agent.state.target is None


@pytest.mark.parametrize(
    "shape",
    [[1, 5, 32, 32], [1, 3, 2**40, 2**40], [2**40, 3, 32, 32], [0, 3, 32, 32]],
    ids=[
        "five channels for rgb",
        "a side of 2^40 (the smoke test allocated until it died)",
        "a batch of 2^40 (MemoryError in every convergence tick, nothing reported)",
        "a batch of 0",
    ],
)
def test_a_document_the_edge_cannot_use_is_refused_with_its_generation(
    tmp_path: Path, models: dict[str, ModelSpec], shape: list[int]
) -> None:
    agent = _agent(tmp_path / "state")
    unusable = models["m1"].model_copy(
        update={"input": models["m1"].input.model_copy(update={"shape": shape})}
    )  # verified by signature, refused by the edge's check
    agent.offer_desired(desired(KEY, 4, line_doc(unusable)))
    _converge(agent, 1)
    refused = [e for e in _events(agent) if e.type == "refused-document"]
    assert [(e.reason, e.generation) for e in refused] == [("malformed", 4)]
    assert f"input.shape {shape}" in refused[0].message
    assert agent.state.target is None


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"tiling": {"size": 1, "overlap": 0}}, "tiling.size"),  # 67 million tiles a frame
        ({"tiling": {"size": 32, "overlap": 32}}, "overlap must be smaller than size"),
        ({"normalize": {"scale": 1.0, "std": [0.0]}}, "std values must be > 0"),
    ],
    ids=["one-pixel tiles", "an overlap as large as the tile", "a zero std"],
)
def test_preprocessing_the_catalogue_refuses_is_refused_by_the_edge(
    tmp_path: Path, models: dict[str, ModelSpec], change: dict[str, Any], says: str
) -> None:
    """A signed document the catalogue could never have produced: the device converged to it,
    and then failed every frame (or built millions of tiles a frame) instead of refusing it."""
    agent = _agent(tmp_path / "state")
    doc = line_doc(models["m1"])
    doc["serving"]["input"] |= change
    agent.offer_desired(desired(KEY, 4, doc))
    _converge(agent, 1)
    refused = [e for e in _events(agent) if e.type == "refused-document"]
    assert [(e.reason, e.generation) for e in refused] == [("malformed", 4)]
    assert "serving.input" in refused[0].message and says in refused[0].message
    assert agent.state.target is None


def test_a_tiling_that_cuts_a_cameras_frame_into_too_many_tiles_is_refused(
    tmp_path: Path, models: dict[str, ModelSpec]
) -> None:
    """16-px tiles overlapping by 15 are within the catalogue's rules, and cut a 4000x3000
    frame into 11.9 million tiles, each decided in turn: the device refuses the document as
    malformed and keeps what it runs. The same tiling on a camera whose ROI is 64x48 px (what
    the models see) is 1,617 tiles a frame, and is taken."""
    agent = _agent(tmp_path / "state")
    doc = line_doc(models["m1"])
    doc["cameras"] = [{"id": "cam-1", "fps": 10.0, "width": 4000, "height": 3000}]
    doc["serving"]["input"] |= {"tiling": {"size": 16, "overlap": 15}}
    agent.offer_desired(desired(KEY, 4, doc))
    _converge(agent, 1)
    refused = [e for e in _events(agent) if e.type == "refused-document"]
    assert [(e.reason, e.generation) for e in refused] == [("malformed", 4)]
    assert refused[0].message.endswith(
        "serving.input.tiling: camera cam-1: tiling size 16, overlap 15 cuts a 4000x3000 "
        "frame into 11,895,225 tiles; at most 4,096 a frame (larger tiles, or less overlap)"
    )
    assert agent.state.target is None
    doc["cameras"][0]["roi"] = [100, 100, 64, 48]
    agent.offer_desired(desired(KEY, 5, doc))
    _converge(agent, 1)
    assert agent.state.target is not None and agent.state.target.document.generation == 5


def test_replayed_older_generation_is_refused(tmp_path: Path, models: dict[str, ModelSpec]) -> None:
    agent = _agent(tmp_path / "state")
    old = desired(KEY, 1, line_doc(models["m1"]))
    agent.offer_desired(desired(KEY, 2, line_doc(models["m1"]), heartbeat_seconds=30))
    agent.offer_desired(old)
    _converge(agent, 2)
    refused = [e for e in _events(agent) if e.type == "refused-document"]
    assert [(e.reason, e.generation) for e in refused] == [("stale-generation", 1)]
    assert agent.state.generation == 2


def test_rollback_via_desired_state_swaps_to_the_hot_standby(
    tmp_path: Path, models: dict[str, ModelSpec]
) -> None:
    m1, m2 = models["m1"], models["m2"]
    agent = _agent(tmp_path / "state")
    agent.offer_desired(desired(KEY, 1, line_doc(m1)))
    _converge(agent)
    agent.offer_desired(desired(KEY, 2, line_doc(m2, previous=m1)))
    _converge(agent)
    assert agent.serve("cam-1", "f", BRIGHT).model == "cand@2"
    sessions = dict(agent.engine.lines()[LINE].__dict__)
    _drain(agent.outbox)
    agent.offer_desired(desired(KEY, 3, line_doc(m1, previous=m2)))
    agent.tick()
    line = agent.engine.lines()[LINE]
    assert line.serving is sessions["standby"] and line.standby is sessions["serving"]
    assert agent.serve("cam-1", "g", BRIGHT).model == "inc@1"
    (activation,) = [e for e in _events(agent) if e.type == "activation"]
    assert activation.reason == "standby-switch"
    assert activation.details["from"] == "cand@2" and activation.details["to"] == "inc@1"


def test_wrong_hash_artifact_is_refused_and_the_incumbent_keeps_serving(
    tmp_path: Path, models: dict[str, ModelSpec]
) -> None:
    m1 = models["m1"]
    art = models["m2"].artifact
    bad = model_spec("inc@9", "e" * 64, art.size, art.url, m1.output_classes, m1.input.shape)
    agent = _agent(tmp_path / "state")
    agent.offer_desired(desired(KEY, 1, line_doc(m1)))
    _converge(agent)
    _drain(agent.outbox)
    agent.offer_desired(desired(KEY, 2, line_doc(bad)))
    _converge(agent)
    events = _events(agent)
    assert [(e.type, e.reason) for e in events] == [("download-failed", "hash-mismatch")]
    assert agent.serve("cam-1", "f", BRIGHT).model == "inc@1"
    report = ReportedState.model_validate_json(build_report(agent))
    assert report.lines[0].phase == "failed"
    # which of the line's models failed (serving, candidate, novelty...), not only a digest
    assert report.lines[0].message.startswith("inc@9 (eeeeeeeeeeee) hash-mismatch: ")
    assert agent.state.applied_generation == 1


def test_wrong_class_count_model_falls_back(tmp_path: Path, models: dict[str, ModelSpec]) -> None:
    two = spec_for(tmp_path / "src", "two", 4, classes=("ok", "scratch"))
    liar = two.model_copy(  # the document claims 3 classes, the graph outputs 2
        update={"output_classes": models["m1"].output_classes}
    )
    agent = _agent(tmp_path / "state")
    agent.offer_desired(desired(KEY, 1, line_doc(models["m1"], candidate=liar, stage="shadow")))
    _converge(agent)
    events = _events(agent)
    assert ("fallback", "smoke-failed") in [(e.type, e.reason) for e in events]
    assert agent.state.applied_generation == 1
    decision = agent.serve("cam-1", "f", BRIGHT)
    assert decision.model == "inc@1" and decision.candidate is None


def test_candidate_crash_at_runtime_is_recorded_and_survives_restart(
    tmp_path: Path, models: dict[str, ModelSpec]
) -> None:
    agent = _agent(tmp_path / "state")
    agent.offer_desired(
        desired(KEY, 1, line_doc(models["m1"], candidate=models["crashy"], stage="shadow"))
    )
    _converge(agent)
    _drain(agent.outbox)
    decision = agent.serve("cam-1", "f", BRIGHT)  # bright: the candidate raises
    assert decision.label == "ok" and decision.candidate_error
    agent.tick()
    events = _events(agent)
    assert [(e.type, e.reason) for e in events] == [
        ("fallback", "candidate-error"),
        ("activation", "desired-state"),  # the line, persisted without its candidate
    ]
    assert agent.state.active[LINE].candidate is None
    agent.outbox.close()
    again = _agent(tmp_path / "state")
    again.tick()
    assert again.engine.lines()[LINE].candidate is None  # not re-enabled after a restart


def test_removed_from_the_fleet_keeps_serving_and_says_so(
    tmp_path: Path, models: dict[str, ModelSpec]
) -> None:
    agent = _agent(tmp_path / "state")
    agent.offer_desired(desired(KEY, 1, line_doc(models["m1"])))
    _converge(agent)
    agent.offer_desired(b"")  # cleared without a signature: not a removal
    agent.tick()
    assert not agent.removed
    refused = [e for _, e in _drain(agent.outbox) if e.get("type") == "refused-document"]
    assert [e["reason"] for e in refused] == ["unsigned-removal"]
    agent.offer_desired(tombstone(2))  # the reconciler's signed removal
    agent.tick()
    report = ReportedState.model_validate_json(build_report(agent))
    assert report.error == "removed from the fleet"
    assert agent.serve("cam-1", "f", BRIGHT).model == "inc@1"


def tombstone(generation: int, device: str = "dev-1") -> bytes:
    from reconciler.service.publish import tombstone as signed_removal

    return signed_removal("plant", device, f"{generation:040x}", generation, KEY)


def test_a_removal_must_be_signed_newer_and_addressed_to_the_device(
    tmp_path: Path, models: dict[str, ModelSpec]
) -> None:
    agent = _agent(tmp_path / "state")
    agent.offer_desired(desired(KEY, 3, line_doc(models["m1"])))
    _converge(agent)
    forged = json.loads(tombstone(4))
    forged["generation"] = 5  # changed after signing
    for payload in (tombstone(2), tombstone(3), tombstone(4, "dev-2"), json.dumps(forged).encode()):
        agent.offer_desired(payload)
        agent.tick()
        assert not agent.removed
    reasons = [e["reason"] for _, e in _drain(agent.outbox) if e.get("type") == "refused-document"]
    assert reasons == ["stale-generation", "stale-generation", "wrong-device", "bad-signature"]
    agent.offer_desired(tombstone(4))
    agent.tick()
    assert agent.removed and agent.state.removed_generation == 4
    agent.offer_desired(desired(KEY, 3, line_doc(models["m1"])))  # its last document replayed
    agent.tick()
    assert agent.removed  # cannot undo the removal


def test_only_a_newer_verified_document_ends_the_removed_state(
    tmp_path: Path, models: dict[str, ModelSpec]
) -> None:
    agent = _agent(tmp_path / "state")
    document = desired(KEY, 1, line_doc(models["m1"]))
    agent.offer_desired(document)
    _converge(agent)
    agent.offer_desired(tombstone(2))
    agent.tick()
    agent.offer_desired(b"{}")  # refused (malformed): still removed
    agent.tick()
    agent.offer_desired(document)  # the last document again: not newer than the tombstone
    agent.tick()
    assert agent.removed
    agent.offer_desired(desired(KEY, 3, line_doc(models["m1"])))  # docs/protocol.md 4.1, 4.2
    agent.tick()
    assert not agent.removed and agent.state.applied_generation == 3
    assert ReportedState.model_validate_json(build_report(agent)).error == ""


def test_removal_from_the_fleet_survives_a_restart_until_a_new_document_arrives(
    tmp_path: Path, models: dict[str, ModelSpec]
) -> None:
    first = _agent(tmp_path / "state")
    first.offer_desired(desired(KEY, 1, line_doc(models["m1"])))
    _converge(first)
    first.offer_desired(tombstone(2))  # the reconciler's signed removal
    first.tick()
    first.outbox.close()
    again = _agent(tmp_path / "state")  # restarted; the broker has nothing retained to send
    again.tick()
    assert again.removed
    report = ReportedState.model_validate_json(build_report(again))
    assert report.error == "removed from the fleet"
    assert again.serve("cam-1", "f", BRIGHT).model == "inc@1"  # still inspecting
    status = local_status(tmp_path / "state")
    assert status["condition"] == "Removed" and status["removed_at"] is not None
    assert status["reason"] == "RemovedFromFleet"
    assert "still serving what it ran (generation 1)" in status["message"]
    again.offer_desired(desired(KEY, 3, line_doc(models["m2"])))  # added to the fleet again
    _converge(again)
    assert not again.removed and again.state.applied_generation == 3
    again.outbox.close()
    assert not _agent(tmp_path / "state").removed
    assert local_status(tmp_path / "state")["condition"] == "Synced"


def test_unreadable_frames_are_counted_in_the_report(
    tmp_path: Path, models: dict[str, ModelSpec]
) -> None:
    agent = _agent(tmp_path / "state")
    agent.offer_desired(desired(KEY, 1, line_doc(models["m1"])))
    _converge(agent)
    agent.serve("cam-1", "f1", BRIGHT)
    agent.unreadable()
    body = json.loads(build_report(agent))
    metrics = body["lines"][0]["metrics"]
    assert (metrics["frames"], metrics["unreadable_frames"]) == (1, 1)
    assert body["error"] == ""  # some frames decided: counted, not an error


def test_a_line_whose_frames_are_all_unreadable_is_a_device_error(
    tmp_path: Path, models: dict[str, ModelSpec]
) -> None:
    """A camera writing 12-bit TIFFs OpenCV cannot read left the device Healthy in status."""
    agent = _agent(tmp_path / "state")
    agent.offer_desired(desired(KEY, 1, line_doc(models["m1"])))
    _converge(agent)
    for _ in range(3):
        agent.unreadable()
    error = ReportedState.model_validate_json(build_report(agent)).error
    assert error == f"frames {LINE}: 3 unreadable frame(s) and none decided since the last report"
    agent.serve("cam-1", "f1", BRIGHT)
    assert ReportedState.model_validate_json(build_report(agent)).error == ""


def test_edge_status_judges_the_last_report_error_as_the_fleet_does(
    tmp_path: Path, models: dict[str, ModelSpec]
) -> None:
    """`edge status` read only state.json: a blind line (an `error` the fleet shows Failed)
    was `Synced` on the device. It reads the agent's last report too."""
    agent = _agent(tmp_path / "state")
    agent.offer_desired(desired(KEY, 1, line_doc(models["m1"])))
    _converge(agent)
    for _ in range(2):
        agent.unreadable()
    agent.send_report()
    status = local_status(tmp_path / "state")
    blind = f"frames {LINE}: 2 unreadable frame(s) and none decided since the last report"
    assert (status["condition"], status["reason"], status["message"]) == (
        "Failed",
        "DeviceError",
        blind,
    )
    assert status["error"] == blind and status["reported_at"] is not None
    assert f"error       {blind} (reported " in render_text(status)
    agent.serve("cam-1", "f1", BRIGHT)
    agent.send_report()
    status = local_status(tmp_path / "state")
    assert (status["condition"], status["error"], status["warning"]) == ("Synced", "", "")
    assert "error " not in render_text(status)


def test_full_disk_is_reported_and_the_incumbent_keeps_serving(
    tmp_path: Path, models: dict[str, ModelSpec]
) -> None:
    agent = _agent(tmp_path / "state")
    agent.offer_desired(desired(KEY, 1, line_doc(models["m1"])))
    _converge(agent)
    agent.store.reserve_bytes = 2**62  # no disk can hold this much
    agent.offer_desired(desired(KEY, 2, line_doc(models["m2"], previous=models["m1"])))
    delay = agent.tick()
    assert delay > 0  # retried later with backoff, not in a busy loop
    report = ReportedState.model_validate_json(build_report(agent))
    assert "not enough disk" in report.error
    assert report.applied is not None and report.applied.generation == 1
    assert agent.serve("cam-1", "f", BRIGHT).model == "inc@1"
    _drain(agent.outbox)
    agent.store.reserve_bytes = 0  # space was freed
    _converge(agent)
    assert agent.serve("cam-1", "g", BRIGHT).model == "cand@2"
    reports = [b for ch, b in _drain(agent.outbox) if ch == "reported"]
    assert reports and reports[-1]["error"] == ""  # the error is cleared at once


def test_oversize_report_drops_details_to_fit_the_protocol() -> None:
    from edge_puller.report import fit as _fit
    from linefleet_core.wire import MAX_REPORTED_BYTES

    cameras = {f"cam-{n}": {"stats": {"brightness": 0.5}, "drift_score": 0.1} for n in range(4000)}
    body = {
        "lines": [
            {"line": LINE, "message": "x" * 5000, "metrics": {"frames": 3, "cameras": cameras}}
        ]
    }
    fitted = json.loads(_fit(body))
    assert len(json.dumps(fitted)) <= MAX_REPORTED_BYTES
    assert fitted["lines"][0]["metrics"] == {"frames": 3}
    assert len(fitted["lines"][0]["message"]) == 200


def test_deeply_nested_json_is_refused_not_a_crash(tmp_path: Path) -> None:
    agent = _agent(tmp_path / "state")
    agent.offer_desired(b"[" * 150_000 + b"]" * 150_000)  # oversize and deeply nested
    agent.offer_desired(b'{"generation": ' + b"[" * 50_000 + b"]" * 50_000 + b"}")
    agent.tick()
    refused = [(e.type, e.reason) for e in _events(agent)]
    assert refused == [("refused-document", "oversize"), ("refused-document", "malformed")]


def test_a_file_url_outside_the_artifact_roots_fails_and_the_incumbent_keeps_serving(
    tmp_path: Path, models: dict[str, ModelSpec]
) -> None:
    agent = _agent(tmp_path / "state")
    agent.offer_desired(desired(KEY, 1, line_doc(models["m1"])))
    _converge(agent)
    elsewhere = spec_for(tmp_path / "elsewhere", "other", 7, pad_bytes=16)  # outside `src`
    agent.offer_desired(desired(KEY, 2, line_doc(elsewhere)))
    _converge(agent)
    refused = [(e.type, e.reason) for e in _events(agent) if e.type == "download-failed"]
    assert refused == [("download-failed", "outside-artifact-roots")]
    assert agent.serve("cam-1", "f", BRIGHT).model == "inc@1"
    assert (agent.state.generation, agent.state.applied_generation) == (2, 1)


def test_without_an_artifact_root_every_file_url_is_refused(
    tmp_path: Path, models: dict[str, ModelSpec]
) -> None:
    agent = Agent("plant", "dev-1", tmp_path / "state", {KEY.key_id: KEY.public})
    agent.offer_desired(desired(KEY, 1, line_doc(models["m1"])))
    _converge(agent)
    refused = [e for e in _events(agent) if e.type == "download-failed"]
    assert [e.reason for e in refused] == ["no-artifact-root"]
    assert "no --artifact-root given" in refused[0].message
    assert agent.state.applied_generation == 0
    assert not agent.store.has(models["m1"].artifact.sha256)
    assert agent.state.failures[models["m1"].artifact.sha256].reason == "no-artifact-root"


def test_a_stored_model_that_rotted_on_disk_is_downloaded_again(
    tmp_path: Path, models: dict[str, ModelSpec]
) -> None:
    first = _agent(tmp_path / "state")
    first.offer_desired(desired(KEY, 1, line_doc(models["m1"])))
    _converge(first)
    first.outbox.close()
    stored = tmp_path / "state" / "models" / models["m1"].artifact.sha256
    stored.write_bytes(b"\0" * stored.stat().st_size)  # bit rot while powered off
    again = _agent(tmp_path / "state")
    _converge(again)
    assert again.serve("cam-1", "f", BRIGHT).model == "inc@1"
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == models["m1"].artifact.sha256
    assert again.state.failures == {}


def test_the_standby_inspects_while_a_rotted_serving_model_is_fetched_again(
    tmp_path: Path, models: dict[str, ModelSpec]
) -> None:
    m1, m2 = models["m1"], models["m2"]
    first = _agent(tmp_path / "state")
    first.offer_desired(desired(KEY, 1, line_doc(m1)))
    _converge(first)
    first.offer_desired(desired(KEY, 2, line_doc(m2, previous=m1)))
    _converge(first)
    first.outbox.close()
    Path(m2.artifact.url.removeprefix("file://")).rename(
        tmp_path / "away.onnx"
    )  # source unreachable
    stored = tmp_path / "state" / "models" / m2.artifact.sha256
    stored.write_bytes(b"\0" * stored.stat().st_size)  # and the local copy rotted
    again = _agent(tmp_path / "state")
    _converge(again)
    decision = again.serve("cam-1", "f", BRIGHT)
    assert decision.model == "inc@1"  # never without a model: the standby inspects
    assert ("download-failed", "not-found") in [(e.type, e.reason) for e in _events(again)]
    (tmp_path / "away.onnx").rename(m2.artifact.url.removeprefix("file://"))  # the file is back
    again.offer_desired(desired(KEY, 3, line_doc(m2, previous=m1)))  # and published again
    _converge(again)
    assert again.serve("cam-1", "g", BRIGHT).model == "cand@2"


DARK = np.full((48, 64, 3), 30, dtype=np.uint8)  # decided `scratch`: spooled for upload
OLD_LINE = "plant/line-2"


def _upload_all(agent: Agent) -> int:
    """What the MQTT link does while connected: upload every spooled frame within budget."""
    sent = 0
    for spool in agent.spool_list():
        while (upload := spool.next_upload()) is not None:
            spool.uploaded(upload[0], len(upload[1]))
            sent += 1
    return sent


def _retire_a_line_with_spooled_frames(agent: Agent, models: dict[str, ModelSpec]) -> Path:
    agent.offer_desired(
        desired(KEY, 1, line_doc(models["m1"]), line_doc(models["m1"], line=OLD_LINE))
    )
    _converge(agent)
    agent.serve("cam-1", "d1", DARK, OLD_LINE)
    agent.serve("cam-1", "d2", DARK, OLD_LINE)
    agent.offer_desired(desired(KEY, 2, line_doc(models["m1"])))  # line-2 leaves the device
    _converge(agent)
    return agent.state_dir / "spool" / "plant__line-2"


def test_a_retired_lines_spool_uploads_what_it_holds_then_goes_away(
    tmp_path: Path, models: dict[str, ModelSpec]
) -> None:
    agent = _agent(tmp_path / "state")
    folder = _retire_a_line_with_spooled_frames(agent, models)
    assert OLD_LINE not in agent.engine.lines()
    assert len(list(folder.glob("*.lff"))) == 2  # not lost: still waiting for the link
    assert _upload_all(agent) == 2
    _converge(agent, 2)
    assert not folder.exists()
    assert [s.folder.name for s in agent.spool_list()] == []
    assert not [e for e in _events(agent) if e.type == "spool-discarded"]


def test_a_retired_spool_keeps_uploading_after_a_restart_and_is_discarded_after_the_grace(
    tmp_path: Path, models: dict[str, ModelSpec]
) -> None:
    first = _agent(tmp_path / "state")
    folder = _retire_a_line_with_spooled_frames(first, models)
    retired_at = json.loads((folder / "counters.json").read_bytes())["retired_at"]
    first.outbox.close()
    again = _agent(tmp_path / "state")  # restarted offline: nothing was uploaded
    _converge(again, 2)
    assert [s.folder for s in again.spool_list()] == [folder]  # the link will find it
    assert json.loads((folder / "counters.json").read_bytes())["retired_at"] == retired_at
    status = local_status(tmp_path / "state")
    assert [(r["line"], r["waiting"]) for r in status["retired_spools"]] == [(OLD_LINE, 2)]
    assert "retired     plant/line-2: no longer served; 2 frame(s)" in render_text(status)
    counters = json.loads((folder / "counters.json").read_bytes())
    counters["retired_at"] = retired_at - RETIRED_SPOOL_GRACE  # weeks offline
    (folder / "counters.json").write_text(json.dumps(counters))
    again.outbox.close()
    third = _agent(tmp_path / "state")
    _converge(third, 3)
    assert not folder.exists()
    discarded = [e for e in _events(third) if e.type == "spool-discarded"]
    assert [(e.line, e.reason, e.details["frames"]) for e in discarded] == [
        (OLD_LINE, "retired-line", 2)
    ]


def test_a_folder_waits_for_the_first_model_instead_of_spending_its_frames(
    tmp_path: Path, models: dict[str, ModelSpec]
) -> None:
    import threading

    from edge_puller.runner import wait_for_a_model

    agent = _agent(tmp_path / "state")
    stop = threading.Event()
    waiter = threading.Thread(target=wait_for_a_model, args=(agent, LINE, stop))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive()  # no desired state yet: the frames are not read
    agent.offer_desired(desired(KEY, 1, line_doc(models["m1"])))
    _converge(agent)
    waiter.join(2.0)
    assert not waiter.is_alive()
    assert agent.serve("cam-1", "f1", BRIGHT, LINE).model == "inc@1"
    wait_for_a_model(agent, "plant/no-such-line", stop)  # a wrong --line does not hang


def _roi_line(models: dict[str, ModelSpec]) -> dict[str, Any]:
    """The line with a camera declared 64x48 whose ROI is columns 32-47 (all rows)."""
    doc = line_doc(models["m1"])
    doc["cameras"][0]["roi"] = [32, 0, 16, 48]
    return doc


def test_a_frame_at_another_scale_than_declared_has_its_roi_scaled_and_says_so(
    tmp_path: Path, models: dict[str, ModelSpec]
) -> None:
    """A camera delivering 32x24 instead of the declared 64x48 had its ROI clipped to the last
    column and decided on that strip, with no word in the report. It is inspected, so the
    report says so in its `warning`, not its `error` (which made `status` show it Failed)."""
    agent = _agent(tmp_path / "state")
    agent.offer_desired(desired(KEY, 1, _roi_line(models)))
    _converge(agent)
    half = np.full((24, 32, 3), 220, dtype=np.uint8)
    half[:, 16:24] = 0  # the ROI's part of the scene is dark (scratch) at this scale
    assert agent.serve("cam-1", "f1", half).label == "scratch"
    report = ReportedState.model_validate_json(build_report(agent))
    assert report.warning == (
        f"frames cam-1 ({LINE}): 32x24, the fleet declares 64x48: ROI scaled by 0.5 and decided"
    )
    assert report.error == ""
    agent.tick()
    said = [b for ch, b in _drain(agent.outbox) if ch == "reported"]
    assert said and said[-1]["warning"] == report.warning  # at once, not at the next heartbeat
    agent.serve("cam-1", "f2", BRIGHT)  # the declared size again
    assert ReportedState.model_validate_json(build_report(agent)).warning == ""
    agent.tick()
    said = [b for ch, b in _drain(agent.outbox) if ch == "reported"]
    assert said and said[-1]["warning"] == ""  # the all-clear is reported at once too
    agent.serve("cam-1", "f3", half)
    other = _roi_line(models)
    other["cameras"][0]["id"] = "cam-2"
    agent.offer_desired(desired(KEY, 2, other))  # cam-1 is no longer the line's
    _converge(agent)
    assert ReportedState.model_validate_json(build_report(agent)).warning == ""


def test_a_frame_of_another_aspect_than_declared_is_refused_and_named(
    tmp_path: Path, models: dict[str, ModelSpec]
) -> None:
    agent = _agent(tmp_path / "state")
    agent.offer_desired(desired(KEY, 1, _roi_line(models)))
    _converge(agent)
    decision = agent.serve("cam-1", "f1", np.full((48, 48, 3), 220, dtype=np.uint8))
    assert (decision.decided_by, decision.label) == ("none", None)
    body = json.loads(build_report(agent))
    assert body["lines"][0]["metrics"]["unreadable_frames"] == 1
    assert body["error"].startswith(
        f"frames cam-1 ({LINE}): 48x48, the fleet declares 64x48 (another aspect): not decided"
    )
    assert body["warning"] == ""  # it cannot be inspected: an error, not a warning


def test_a_camera_without_an_roi_is_decided_at_any_size(
    tmp_path: Path, models: dict[str, ModelSpec]
) -> None:
    agent = _agent(tmp_path / "state")
    agent.offer_desired(desired(KEY, 1, line_doc(models["m1"])))
    _converge(agent)
    assert agent.serve("cam-1", "f1", np.full((48, 48, 3), 220, dtype=np.uint8)).label == "ok"
    assert ReportedState.model_validate_json(build_report(agent)).error == ""


def test_a_frame_larger_than_declared_that_its_tiling_cuts_into_too_many_tiles_is_refused(
    tmp_path: Path, models: dict[str, ModelSpec]
) -> None:
    """A camera without an ROI is decided at any size, so the desired state's check counts
    tiles only at the declared size: 16-px tiles are 12 on the declared 64x48, and 16,384 on
    a 2048x2048 frame the camera sends instead, each decided in turn. Such a frame is refused
    and named, never tiled; frames of the declared size are decided as before."""
    agent = _agent(tmp_path / "state")
    doc = line_doc(models["m1"])
    doc["serving"]["input"] |= {"tiling": {"size": 16, "overlap": 0}}
    agent.offer_desired(desired(KEY, 1, doc))
    _converge(agent)
    assert agent.serve("cam-1", "f1", BRIGHT).label == "ok"
    huge = np.full((2048, 2048, 3), 220, dtype=np.uint8)
    decision = agent.serve("cam-1", "f2", huge)
    assert (decision.decided_by, decision.label) == ("none", None)
    body = json.loads(build_report(agent))
    assert body["lines"][0]["metrics"]["unreadable_frames"] == 1
    assert body["error"].startswith(
        f"frames cam-1 ({LINE}): 2048x2048: tiling size 16, overlap 0 cuts a 2048x2048 frame "
        "into 16,384 tiles; at most 4,096 a frame (larger tiles, or less overlap): not decided"
    )
    assert agent.serve("cam-1", "f3", BRIGHT).label == "ok"
    assert json.loads(build_report(agent))["error"] == ""


def test_the_tombstone_already_applied_sent_again_is_a_duplicate_not_a_refusal(
    tmp_path: Path, models: dict[str, ModelSpec]
) -> None:
    """Each re-subscribe of a removed device delivered its retained tombstone again, and each
    time the device sent a `refused-document` (`stale-generation`) event."""
    agent = _agent(tmp_path / "state")
    agent.offer_desired(desired(KEY, 1, line_doc(models["m1"])))
    _converge(agent)
    agent.offer_desired(tombstone(2))
    agent.tick()
    _drain(agent.outbox)
    for _ in range(2):  # reconnects
        agent.offer_desired(tombstone(2))
        agent.tick()
    assert agent.removed and _events(agent) == []
    forged = json.loads(tombstone(2))
    forged["commit"] = "f" * 40  # changed after signing: still refused
    agent.offer_desired(json.dumps(forged).encode())
    agent.offer_desired(tombstone(1))  # an older one: still stale
    agent.tick()
    assert [(e.type, e.reason) for e in _events(agent)] == [
        ("refused-document", "bad-signature"),
        ("refused-document", "stale-generation"),
    ]
