from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_puller.engine import Decision, Outcome
from edge_puller.localstatus import local_status
from edge_puller.metrics import LineMetrics
from edge_puller.spool import Spool, keep_reason
from linefleet_core.framestats import drift_score, frame_stats
from linefleet_core.wire import LineMetrics as WireLineMetrics
from linefleet_core.wire import decode_frame
from tests.support.wiremodels import telemetry

LINE = "plant/line-1"
NOW = dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.UTC)
FRAME = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)


def _decision(
    label: str,
    confidence: float = 0.95,
    candidate: str | None = None,
    frame_id: str = "f",
    candidate_error: str = "",
) -> Decision:
    serving = Outcome("inc@1", label, confidence, 2.0)
    tried = Outcome("cand@2", candidate, 0.9, 3.0) if candidate else None
    return Decision(
        LINE,
        "cam-1",
        frame_id,
        "serving",
        label,
        confidence,
        serving,
        tried,
        stage="shadow" if candidate or candidate_error else None,
        candidate_error=candidate_error,
    )


def test_keep_reasons_follow_the_policy() -> None:
    policy = telemetry(uncertainty_band=[0.4, 0.6])
    assert keep_reason(_decision("scratch"), policy) == "defect"
    assert keep_reason(_decision("ok", 0.5), policy) == "uncertain"
    assert keep_reason(_decision("ok", candidate="dent"), policy) == "disagreement"
    assert keep_reason(_decision("ok", candidate="ok"), policy) is None
    assert keep_reason(_decision("ok"), policy) is None
    quiet = telemetry(keep_defects=False, keep_disagreements=False)
    assert keep_reason(_decision("scratch"), quiet) is None
    assert keep_reason(_decision("ok", candidate="dent"), quiet) is None


def test_only_anomalies_are_spooled_and_they_decode(tmp_path: Path) -> None:
    spool = Spool(tmp_path, telemetry())
    assert spool.consider(_decision("ok"), FRAME, "plant", "dev-1", NOW) is None
    assert spool.consider(_decision("scratch", frame_id="f2"), FRAME, "plant", "dev-1", NOW)
    assert (spool.counters.seen, spool.counters.kept, spool.pending()) == (2, 1, 1)
    upload = spool.next_upload(NOW.date())
    assert upload is not None
    meta, jpeg = decode_frame(upload[1])
    assert (meta.reason, meta.predicted, meta.frame_id, meta.model) == (
        "defect",
        "scratch",
        "f2",
        "inc@1",
    )
    assert jpeg[:2] == b"\xff\xd8"


def test_spool_is_bounded_and_evicts_oldest_first(tmp_path: Path) -> None:
    spool = Spool(tmp_path, telemetry(spool_mb=0.02))  # ~20 KB: a few noisy frames
    for n in range(12):
        spool.consider(_decision("dent", frame_id=f"f{n}"), FRAME, "plant", "dev-1", NOW)
    assert spool.counters.evicted > 0
    assert spool.spooled_bytes <= 0.02 * 1024 * 1024
    assert spool.counters.kept == 12
    upload = spool.next_upload(NOW.date())
    assert upload is not None
    assert decode_frame(upload[1])[0].frame_id == f"f{spool.counters.evicted}"


def test_daily_budget_holds_uploads_until_the_next_day(tmp_path: Path) -> None:
    spool = Spool(tmp_path, telemetry(daily_upload_budget_mb=0.01))  # ~10 KB a day
    for n in range(3):
        spool.consider(_decision("dent", frame_id=f"f{n}"), FRAME, "plant", "dev-1", NOW)
    sent = 0
    while (upload := spool.next_upload(NOW.date())) is not None:
        spool.uploaded(upload[0], len(upload[1]), NOW.date())
        sent += 1
    assert 0 < sent < 3
    assert spool.next_upload((NOW + dt.timedelta(days=1)).date()) is not None


def test_counters_survive_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path, telemetry())
    spool.consider(_decision("dent"), FRAME, "plant", "dev-1", NOW)
    again = Spool(tmp_path, telemetry())
    assert (again.counters.kept, again.pending(), again.spooled_bytes) == (
        1,
        1,
        spool.spooled_bytes,
    )


def test_a_spool_whose_counters_were_lost_never_overwrites_a_spooled_frame(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path, telemetry())
    for _ in range(3):
        spool.consider(_decision("dent"), FRAME, "plant", "dev-1", NOW)
    before = {p.name: p.read_bytes() for p in tmp_path.glob("*.lff")}
    (tmp_path / "counters.json").unlink()  # lost (or reset) while the frames stayed
    again = Spool(tmp_path, telemetry())
    again.consider(_decision("scratch"), FRAME, "plant", "dev-1", NOW)
    # the sequence restarted at 1 and the new frame replaced 000000000001-defect-...
    after = {p.name: p.read_bytes() for p in tmp_path.glob("*.lff")}
    assert len(after) == again.pending() == 4
    assert all(after[name] == data for name, data in before.items())
    assert again.spooled_bytes == sum(len(d) for d in after.values())


@pytest.mark.parametrize(
    "counters",
    [
        '{"seq": "x"}',
        '{"seq": 1e400}',
        '{"reasons": {"defect": {"kept": "many"}}}',
        '{"audit": {"cam-1": 5}}',
        '{"bytes_today": null}',
        "[1, 2]",
    ],
)
def test_counters_of_the_wrong_type_are_counted_anew_instead_of_failing_every_frame(
    tmp_path: Path, counters: str, caplog: pytest.LogCaptureFixture
) -> None:
    Spool(tmp_path, telemetry()).consider(_decision("dent"), FRAME, "plant", "dev-1", NOW)
    (tmp_path / "counters.json").write_text(counters)
    spool = Spool(tmp_path, telemetry(audit_rate=1.0))
    assert "counters.json" in caplog.text and "counting anew" in caplog.text
    assert spool.consider(_decision("dent"), FRAME, "plant", "dev-1", NOW) == "defect"
    assert spool.consider(_decision("ok", 0.99), FRAME, "plant", "dev-1", NOW) == "audit"
    assert spool.pending() == 3 and spool.next_upload(NOW.date()) is not None


def test_foreign_entries_named_like_frames_are_neither_counted_nor_uploaded(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "spool" / "plant__line-1"
    Spool(folder, telemetry()).consider(_decision("dent"), FRAME, "plant", "dev-1", NOW)
    (folder / "000000000007-defect-0.5.lff").mkdir()  # read_bytes() on upload: IsADirectoryError
    (folder / "000000000008-defect-0.5.lff").symlink_to(tmp_path / "gone")  # stat(): a crash
    (folder / "notes.lff").write_bytes(b"not a frame")  # ranked first ("legacy") and uploaded
    spool = Spool(folder, telemetry())
    assert spool.pending() == 1
    path, payload = spool.next_upload(NOW.date()) or (None, b"")
    assert path is not None and decode_frame(payload)[0].reason == "defect"
    spool.uploaded(path, len(payload), NOW.date())
    assert spool.next_upload(NOW.date()) is None
    (folder / "counters.json").write_text("[1, 2]")  # not an object: .get() raised
    (retired,) = local_status(tmp_path)["retired_spools"]  # `edge status` reads it too
    assert (retired["line"], retired["waiting"], retired["kept"]) == ("plant/line-1", 0, 0)


def test_a_deleted_spool_ignores_an_upload_in_flight_and_keeps_nothing_new(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path / "spool", telemetry())
    spool.consider(_decision("dent"), FRAME, "plant", "dev-1", NOW)
    spool.mark_retired(1000.0)
    assert Spool(tmp_path / "spool", telemetry()).counters.retired_at == 1000.0
    in_flight = spool.next_upload(NOW.date())  # the link took it, then the spool goes
    assert in_flight is not None
    frames, size = spool.delete()
    assert (frames, size) == (1, len(in_flight[1]))
    spool.uploaded(in_flight[0], len(in_flight[1]), NOW.date())  # the PUBACK comes after
    spool.consider(_decision("dent"), FRAME, "plant", "dev-1", NOW)
    assert spool.next_upload(NOW.date()) is None
    assert not (tmp_path / "spool").exists()


def test_metrics_window_reports_health_agreement_and_confusion() -> None:
    metrics = LineMetrics(LINE, stats_every=1)
    metrics.observe(_decision("ok", candidate="ok"), FRAME)
    metrics.observe(_decision("scratch", candidate="ok"), FRAME)
    metrics.observe(_decision("ok", candidate="ok"), FRAME)
    metrics.observe(_decision("ok", candidate_error="boom"), FRAME)
    snap = metrics.snapshot(frame_stats(FRAME))
    assert snap["frames"] == 4
    assert snap["defect_rate"] == 0.25
    assert snap["defect_rate_by_class"] == {"scratch": 0.25}
    assert snap["candidate_frames"] == 3
    assert snap["candidate_error_rate"] == 0.25
    assert snap["shadow_agreement"] == 2 / 3
    assert snap["confusion"] == {"ok": {"ok": 2}, "scratch": {"ok": 1}}
    assert snap["latency_p95_ms"] == 2.0
    assert snap["cameras"]["cam-1"]["frames"] == 4
    assert snap["drift_score"] < 1e-6  # the same frames as the reference: no drift
    WireLineMetrics.model_validate(snap)  # the wire accepts it (extra fields are ignored)
    assert metrics.snapshot({})["frames"] == 0  # a new window


def test_a_window_without_shadow_comparisons_has_no_agreement_not_zero() -> None:
    metrics = LineMetrics(LINE)
    metrics.observe(_decision("ok"), FRAME)  # no candidate
    metrics.observe(_decision("ok", candidate_error="boom"), FRAME)  # it ran and failed
    snap = metrics.snapshot({})
    assert (snap["frames"], snap["candidate_frames"]) == (2, 0)
    assert snap["shadow_agreement"] is None
    sent = WireLineMetrics.model_validate(snap)
    assert sent.shadow_agreement is None
    assert '"shadow_agreement":null' in sent.model_dump_json()


def test_input_stats_and_drift() -> None:
    dark = np.full((480, 640, 3), 40, dtype=np.uint8)
    stats = frame_stats(dark)
    assert abs(stats["brightness"] - 40 / 255) < 1e-3
    assert stats["contrast"] < 1e-3 and stats["sharpness"] < 1e-6
    assert abs(stats["red_balance"] - 1.0) < 1e-6
    assert drift_score(stats, stats) == 0.0
    assert drift_score({"brightness": 0.9}, {"brightness": 0.3}) == 1.0
    assert abs(drift_score({"brightness": 0.33}, {"brightness": 0.3}) - 0.1) < 1e-9
    assert drift_score({"brightness": 0.3}, {"contrast": 0.3}) == 0.0  # nothing to compare


def test_one_statistic_that_moves_is_drift_whatever_its_scale() -> None:
    reference = {"brightness": 0.5, "contrast": 0.2, "sharpness": 0.004, "red_balance": 1.0}
    defocused = {**reference, "sharpness": 0.002}  # a bumped camera: sharpness halves
    assert drift_score(defocused, reference) == 0.5
    assert drift_score({**reference, "brightness": 0.55}, reference) == pytest.approx(0.1)


def test_a_detectors_boxes_and_an_anomaly_score_travel_in_the_spooled_metadata() -> None:
    import datetime as dt

    from edge_puller.engine import Decision, Outcome
    from edge_puller.spool import envelope
    from linefleet_core.modelio import Box
    from linefleet_core.wire import decode_frame

    box = Box("scratch", 0.91, 10.0, 20.0, 30.5, 40.0)
    served = Outcome("yolo@1", "scratch", 0.91, 2.0, boxes=(box,))
    shadow = Outcome("anomaly@1", "dent", 0.8, 1.0, score=0.83)
    decision = Decision("p/l", "cam-1", "f1", "serving", "scratch", 0.91, served, shadow)
    frame = np.full((20, 20, 3), 100, dtype=np.uint8)
    at = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
    payload = envelope(decision, frame, "p", "d", at, "defect")
    assert payload is not None
    meta, _ = decode_frame(payload)
    assert meta.boxes is not None and meta.boxes[0].box == [10.0, 20.0, 30.5, 40.0]
    assert (meta.boxes[0].label, meta.score, meta.candidate_predicted) == ("scratch", None, "dent")
    plain = Decision("p/l", "cam-1", "f2", "serving", "ok", 0.9, Outcome("m@1", "ok", 0.9, 1.0))
    raw = envelope(plain, frame, "p", "d", at, "sample")
    assert raw is not None and b'"boxes"' not in raw and b'"score"' not in raw  # v1 bytes


def test_a_spool_that_cannot_write_drops_the_frame_counts_it_and_inspection_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "spool"
    spool = Spool(folder, telemetry())
    spool.consider(_decision("dent"), FRAME, "plant", "dev-1", NOW)
    shutil.rmtree(folder)
    folder.write_bytes(b"")  # every write under it now fails (NotADirectoryError), as a full disk
    for _ in range(3):  # raised OSError out of Agent.serve, stopping the frame loop
        assert spool.consider(_decision("dent"), FRAME, "plant", "dev-1", NOW) is None
    defect = spool.counters.reasons["defect"]
    assert (defect.kept, defect.dropped, spool.pending()) == (4, 3, 1)
    assert caplog.text.count("frame not spooled") == 1  # once, not once per frame
    folder.unlink()
    folder.mkdir()  # room again
    assert spool.consider(_decision("dent"), FRAME, "plant", "dev-1", NOW) == "defect"
    assert Spool(folder, telemetry()).counters.reasons["defect"].kept == 5


def test_an_export_takes_the_spooled_frames_only_and_ack_leaves_foreign_entries_alone(
    tmp_path: Path,
) -> None:
    from edge_puller.airgap import export_device
    from linefleet_core.bundle import read_export

    state = tmp_path / "state"
    folder = state / "spool" / "plant__line-1"
    spool = Spool(folder, telemetry())
    for _ in range(2):
        spool.consider(_decision("dent"), FRAME, "plant", "dev-1", NOW)
    (folder / "000000000009-defect-0.5.lff").mkdir()  # `--ack` raised IsADirectoryError
    (folder / "000000000010-defect-0.5.lff").symlink_to(tmp_path / "gone")
    (folder / "copy.lff").write_bytes(b"not a frame")
    done = export_device(state, tmp_path / "dev.export", ack=True)
    _, frames = read_export(tmp_path / "dev.export")
    assert done.frames == len(frames) == 2
    assert {decode_frame(f)[0].reason for f in frames} == {"defect"}
    left = sorted(p.name for p in folder.iterdir())
    assert left == [
        "000000000009-defect-0.5.lff",
        "000000000010-defect-0.5.lff",
        "copy.lff",
        "counters.json",
    ]
