"""Anomaly-native logging (issue 20): keep rules that do not rest on the classifier alone, the
audit sample, novelty, and which frames win when a budget binds."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import numpy as np

from edge_puller.engine import Decision, Engine, LineModels, Outcome
from edge_puller.novelty import FRAME_STATS, WARMUP, Novelty, NoveltyScorer
from edge_puller.runtime import load_model
from edge_puller.spool import (
    MB,
    AuditSampler,
    Spool,
    file_name,
    informative,
    keep_reason,
    reason_of,
    score_of,
)
from linefleet_core.wire import decode_frame
from tests.support.external_models import anomaly_model
from tests.support.othersource import foreign_frames
from tests.support.wiremodels import model_spec, telemetry
from tests.unit.edge.helpers import spec_for

LINE = "plant/line-1"
NOW = dt.datetime(2026, 12, 2, 8, 0, tzinfo=dt.UTC)
FRAME = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
NOVEL = Novelty(9.0, True, "novelty@1", 3.0)
NORMAL = Novelty(0.5, False, "novelty@1", 0.5 / 3.0)


def _decision(label: str, confidence: float = 0.95, frame_id: str = "f", camera: str = "cam-1",
              candidate: str | None = None) -> Decision:  # fmt: skip
    serving = Outcome("inc@1", label, confidence, 2.0)
    tried = Outcome("cand@2", candidate, 0.9, 3.0) if candidate else None
    return Decision(LINE, camera, frame_id, "serving", label, confidence, serving, tried)


def test_the_band_has_no_lower_edge_and_uncertain_below_replaces_it() -> None:
    band = telemetry(uncertainty_band=[0.35, 0.65])
    # a dent called "ok" at 0.27 among seven classes is the most uncertain frame: kept
    assert keep_reason(_decision("ok", 0.27), band) == "uncertain"
    assert keep_reason(_decision("ok", 0.14), band) == "uncertain"
    assert keep_reason(_decision("ok", 0.65), band) == "uncertain"
    assert keep_reason(_decision("ok", 0.66), band) is None
    below = telemetry(uncertain_below=0.8)
    assert keep_reason(_decision("ok", 0.79), below) == "uncertain"
    assert keep_reason(_decision("ok", 0.81), below) is None


def test_novelty_keeps_a_confident_ok_and_the_order_of_reasons_holds() -> None:
    policy = telemetry()
    assert keep_reason(_decision("ok", 0.97), policy, NOVEL) == "novel"
    assert keep_reason(_decision("ok", 0.97), policy, NORMAL) is None
    assert keep_reason(_decision("dent", 0.97), policy, NOVEL) == "defect"
    assert keep_reason(_decision("ok", 0.3), policy, NOVEL) == "novel"
    assert keep_reason(_decision("ok", 0.97, candidate="dent"), policy, NORMAL) == "disagreement"
    assert keep_reason(_decision("ok", 0.97), policy, None) is None


def test_doubt_defects_below_leaves_defect_calls_the_novelty_model_finds_normal_to_other_rules(
    tmp_path: Path,
) -> None:
    doubting = telemetry(doubt_defects_below=0.3, uncertain_below=0.5)
    very_normal = Novelty(0.2, False, "novelty@1", 0.2 / 3.0)
    # unset (the default): every defect call is kept, however normal the frame looks
    assert keep_reason(_decision("dent", 0.97), telemetry(), very_normal) == "defect"
    assert keep_reason(_decision("dent", 0.97), doubting, very_normal) is None
    assert keep_reason(_decision("dent", 0.45), doubting, very_normal) == "uncertain"
    assert keep_reason(_decision("dent", 0.97, candidate="ok"), doubting, very_normal) == (
        "disagreement"
    )
    # at or above the share of the threshold, or novel: kept as a defect as before
    assert keep_reason(_decision("dent", 0.97), doubting, Novelty(0.9, False, "n@1", 0.3)) == (
        "defect"
    )
    assert keep_reason(_decision("dent", 0.97), doubting, NOVEL) == "defect"
    # no novelty score, or only frame statistics: no doubt
    assert keep_reason(_decision("dent", 0.97), doubting, None) == "defect"
    stats = Novelty(0.1, False, FRAME_STATS, 0.1 / 4)
    assert keep_reason(_decision("dent", 0.97), doubting, stats) == "defect"
    # the spool counts what it doubted and did not keep; an ok frame is never "doubted"
    built = anomaly_model(tmp_path / "novelty.onnx")
    spec = model_spec(
        ref="novelty@1", sha256=built.sha256, size=built.size, url=built.path.as_uri(),
        classes=("ok", "novel"), input_shape=(1, 64, 64, 3), layout="NHWC", task="anomaly",
        outputs={"score": "score_column", "threshold": 0.5},
    )  # fmt: skip
    model = load_model(built.path, spec)
    bright = np.full((48, 64, 3), 220, np.uint8)
    spool = Spool(tmp_path / "spool", doubting)
    assert spool.consider(_decision("dent", 0.97), bright, "p", "d", NOW, model) is None
    assert spool.consider(_decision("ok", 0.97), bright, "p", "d", NOW, model) is None
    assert spool.consider(_decision("dent", 0.45), bright, "p", "d", NOW, model) == "uncertain"
    assert spool.counters.doubted == 1
    spool.flush()
    assert json.loads((tmp_path / "spool" / "counters.json").read_text())["doubted"] == 1


def test_audit_sample_is_stratified_per_camera() -> None:
    sampler = AuditSampler(random.Random(3))
    taken = {"a": 0, "b": 0}
    # 900 frames of one camera for every 100 of the other, interleaved unevenly
    for i in range(1000):
        camera = "b" if i % 10 == 0 else "a"
        taken[camera] += sampler.take(camera, 0.1)
    assert taken == {"a": 90, "b": 10}
    assert not any(AuditSampler().take("a", 0.0) for _ in range(100))


def test_a_vanishingly_small_audit_rate_samples_nothing_and_does_not_stop_inspection() -> None:
    # `audit_rate: 1e-320` is a finite probability, so `linefleet validate` accepts it; 1 / rate
    # overflows to infinity and used to raise OverflowError out of every confidently-ok frame
    sampler = AuditSampler(random.Random(1))
    for rate in (1e-309, 5e-324):
        assert not any(sampler.take("a", rate) for _ in range(100))
    assert sum(sampler.take("a", 0.5) for _ in range(100)) == 50


def test_audit_frames_are_spooled_with_their_reason_and_counted_per_camera(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path, telemetry(audit_rate=0.25))
    decisions = [_decision("ok", frame_id=f"f{i}", camera=f"cam-{i % 2}") for i in range(80)]
    reasons = [spool.consider(d, FRAME, "plant", "dev-1", NOW) for d in decisions]
    assert reasons.count("audit") == 20
    assert spool.counters.audit == {
        "cam-0": {"population": 40, "sampled": 10},
        "cam-1": {"population": 40, "sampled": 10},
    }
    files = sorted(tmp_path.glob("*.lff"))
    assert len(files) == 20 and all(reason_of(p) == "audit" for p in files)
    meta, _ = decode_frame(files[0].read_bytes())
    assert meta.reason == "audit" and meta.predicted == "ok"
    # no frame kept for another reason is part of the audit's population
    spool.consider(_decision("scratch", frame_id="d"), FRAME, "plant", "dev-1", NOW)
    spool.consider(_decision("ok", 0.2, frame_id="u"), FRAME, "plant", "dev-1", NOW)
    assert sum(c["population"] for c in spool.counters.audit.values()) == 80


def _fill(spool: Spool, reason: str, n: int, start: int = 0) -> None:
    decisions = {
        "defect": lambda i: _decision("scratch", frame_id=f"d{i}"),
        "uncertain": lambda i: _decision("ok", 0.3, frame_id=f"u{i}"),
        "audit": lambda i: _decision("ok", frame_id=f"a{i}"),
    }
    for i in range(start, start + n):
        spool.consider(decisions[reason](i), FRAME, "plant", "dev-1", NOW)


def test_a_full_spool_evicts_the_least_informative_first_and_refuses_below_it(
    tmp_path: Path,
) -> None:
    size = len(next(iter(_sizes(tmp_path / "probe"))))
    policy = telemetry(audit_rate=1.0, spool_mb=(size * 4.5) / (1024 * 1024))
    spool = Spool(tmp_path / "s", policy)
    _fill(spool, "audit", 4)
    _fill(spool, "uncertain", 2)  # two audits make room
    _fill(spool, "defect", 3)  # the other two audits, then the oldest uncertain
    assert spool.pending_by_reason() == {"defect": 3, "uncertain": 1}
    _fill(spool, "audit", 2, start=10)  # nothing less informative left to evict: refused
    assert spool.pending_by_reason() == {"defect": 3, "uncertain": 1}
    c = spool.counters.reasons
    assert (c["audit"].kept, c["audit"].dropped) == (6, 6)  # kept by the rules, 2 refused
    assert (c["uncertain"].kept, c["uncertain"].dropped) == (2, 1)
    assert (c["defect"].kept, c["defect"].dropped) == (3, 0)
    _fill(spool, "defect", 2, start=10)  # a defect still finds room: the oldest defect goes
    assert spool.pending_by_reason() == {"defect": 4}


def _sizes(folder: Path) -> list[bytes]:
    spool = Spool(folder, telemetry())
    spool.consider(_decision("scratch"), FRAME, "plant", "dev-1", NOW)
    return [p.read_bytes() for p in folder.glob("*.lff")]


def test_uploads_go_most_informative_first_and_are_counted_per_reason(tmp_path: Path) -> None:
    spool = Spool(tmp_path, telemetry(audit_rate=1.0))
    _fill(spool, "audit", 2)
    _fill(spool, "uncertain", 1)
    _fill(spool, "defect", 1)
    order = []
    while (upload := spool.next_upload()) is not None:
        path, payload = upload
        order.append(decode_frame(payload)[0].reason)
        spool.uploaded(path, len(payload))
    assert order == ["defect", "uncertain", "audit", "audit"]
    assert spool.counters.reasons["audit"].uploaded == 2
    saved = json.loads((tmp_path / "counters.json").read_bytes())
    assert saved["reasons"]["defect"]["uploaded"] == 1
    again = Spool(tmp_path, telemetry())  # a restart keeps the per-reason counters
    assert again.counters.reasons["audit"].kept == 2


def test_a_spool_written_before_reasons_were_named_still_drains(tmp_path: Path) -> None:
    old = _sizes(tmp_path / "probe")[0]
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "000000000001.lff").write_bytes(old)
    (tmp_path / "s" / "counters.json").write_text('{"seq": 1, "kept": 1}')
    spool = Spool(tmp_path / "s", telemetry())
    assert spool.counters.kept == 1 and spool.pending() == 1
    upload = spool.next_upload()
    assert upload is not None and upload[0].name == "000000000001.lff"
    spool.uploaded(upload[0], len(upload[1]))
    assert spool.pending() == 0 and spool.counters.reasons["legacy"].uploaded == 1


def test_frame_statistics_novelty_learns_a_camera_then_flags_what_is_far_off() -> None:
    rng = np.random.default_rng(1)
    scorer = NoveltyScorer()

    def normal() -> np.ndarray:
        base = rng.integers(120, 136, (48, 64, 3), dtype=np.uint8)
        return np.asarray(base, dtype=np.uint8)

    assert all(scorer.score("cam-1", normal()) is None for _ in range(WARMUP))
    usual = [scorer.score("cam-1", normal()) for _ in range(50)]
    assert all(n is not None and not n.novel and n.by == FRAME_STATS for n in usual)
    dark = scorer.score("cam-1", np.zeros((48, 64, 3), np.uint8))
    assert dark is not None and dark.novel
    # each camera has its own normal: another camera is still warming up
    assert scorer.score("cam-2", np.zeros((48, 64, 3), np.uint8)) is None


def test_a_novelty_model_scores_the_frame_and_its_threshold_decides(tmp_path: Path) -> None:
    built = anomaly_model(tmp_path / "novelty.onnx")
    spec = model_spec(
        ref="novelty@1", sha256=built.sha256, size=built.size, url=built.path.as_uri(),
        classes=("ok", "novel"), input_shape=(1, 64, 64, 3), layout="NHWC", task="anomaly",
        outputs={"score": "score_column", "threshold": 0.5},
    )  # fmt: skip
    model = load_model(built.path, spec)
    bright = np.full((48, 64, 3), 220, np.uint8)
    patched = bright.copy()
    patched[8:24, 8:24] = 0  # one dark patch: the model's darkest cell
    scorer = NoveltyScorer()
    quiet, loud = scorer.score("cam-1", bright, model), scorer.score("cam-1", patched, model)
    assert quiet is not None and not quiet.novel and quiet.by == "novelty@1"
    assert loud is not None and loud.novel and loud.score > 0.5
    assert quiet.ratio == quiet.score / 0.5 < 1 <= loud.ratio == loud.score / 0.5
    spool = Spool(tmp_path / "spool", telemetry())
    reason = spool.consider(_decision("ok", 0.97), patched, "plant", "dev-1", NOW, model)
    assert reason == "novel"
    meta, _ = decode_frame(next((tmp_path / "spool").glob("*.lff")).read_bytes())
    assert meta.reason == "novel" and meta.novelty_by == "novelty@1"
    assert meta.novelty is not None and meta.novelty > 0.5


def test_spooled_names_carry_reason_and_score_and_older_names_still_read() -> None:
    name = Path(file_name(7, "novel", 2.5))
    assert (reason_of(name), score_of(name)) == ("novel", 2.5)
    assert score_of(Path(file_name(8, "defect", float("nan")))) == 0.0
    assert score_of(Path(file_name(9, "defect", -1.0))) == 0.0
    old = Path("000000000003-audit.lff")
    assert (reason_of(old), score_of(old)) == ("audit", 0.0)
    assert reason_of(Path("000000000003.lff")) == "legacy"
    # more informative first: the reason, then the score, then the older
    names = [Path(file_name(1, "audit", 0.9)), Path(file_name(2, "defect", 0.6)),
             Path(file_name(3, "defect", 0.9)), Path(file_name(4, "defect", 0.9))]  # fmt: skip
    assert [p.name[:12] for p in sorted(names, key=informative)] == [
        f"{n:012d}" for n in (3, 4, 2, 1)
    ]


def test_when_the_spool_binds_the_surest_defects_and_the_farthest_novel_frames_stay(
    tmp_path: Path,
) -> None:
    """Real frames (the independent source, one material so sizes are alike) through a real
    engine (a tiny ONNX classifier whose confidence follows brightness), a real novelty model
    and the real spool, a third the size of what the rules keep: within each reason the frames
    kept are the most informative ones, uploads go in that order, and every kept frame is
    counted as uploaded, dropped or still spooled."""
    frames = foreign_frames(33, seed=4, materials=("brushed",))
    frames += foreign_frames(11, seed=5, cls="dent", materials=("brushed",))
    serving = spec_for(tmp_path, "inc", 1, threshold=0.62)
    engine = Engine()
    engine.activate(LineModels(LINE, load_model(Path(serving.artifact.url[7:]), serving)))
    built = anomaly_model(tmp_path / "novelty.onnx")
    novelty = load_model(built.path, model_spec(
        ref="novelty@1", sha256=built.sha256, size=built.size, url=built.path.as_uri(),
        classes=("ok", "novel"), input_shape=(1, 64, 64, 3), layout="NHWC", task="anomaly",
        outputs={"score": "score_column", "threshold": 0.5},
    ))  # fmt: skip
    policy = telemetry(uncertain_below=0.65, audit_rate=0.5)
    loose = Spool(tmp_path / "loose", policy)
    decisions = [engine.infer(LINE, "cam-1", f"f{i}", f) for i, f in enumerate(frames)]
    for decision, frame in zip(decisions, frames, strict=True):
        loose.consider(decision, frame, "plant", "dev-1", NOW, novelty)
    needed = loose.spooled_bytes
    everything = {reason_of(p): score_of(p) for p in (tmp_path / "loose").glob("*.lff")}
    assert set(everything) == {"defect", "novel", "uncertain", "audit"}  # all four at stake
    tight = Spool(tmp_path / "tight", policy.model_copy(update={"spool_mb": needed / 3 / MB}))
    for decision, frame in zip(decisions, frames, strict=True):
        tight.consider(decision, frame, "plant", "dev-1", NOW, novelty)
    kept = {p.name: p for p in (tmp_path / "tight").glob("*.lff")}
    by_reason = tight.counters.reasons
    assert by_reason["audit"].dropped > 0 and by_reason["defect"].dropped > 0
    # per reason, the scores that stayed are the highest of all that reason kept loosely
    for reason in everything:
        stayed = sorted((score_of(p) for p in kept.values() if reason_of(p) == reason),
                        reverse=True)  # fmt: skip
        all_scores = sorted(
            (score_of(p) for p in (tmp_path / "loose").glob("*.lff") if reason_of(p) == reason),
            reverse=True,
        )
        assert stayed == all_scores[: len(stayed)], reason
    # the surest defect calls stayed: none dropped was surer than one spooled
    confidences = {d.frame_id: d.confidence for d in decisions}
    spooled = [decode_frame(p.read_bytes())[0] for p in kept.values()]
    assert min(m.confidence for m in spooled if m.reason == "defect") >= max(
        confidences[m.frame_id] for m in (
            decode_frame(p.read_bytes())[0] for p in (tmp_path / "loose").glob("*.lff")
        ) if m.reason == "defect" and m.frame_id not in {s.frame_id for s in spooled}
    )  # fmt: skip
    # uploads: the most informative first, then per reason kept = uploaded + dropped + left
    order = []
    while (upload := tight.next_upload(NOW.date())) is not None:
        order.append(informative(upload[0])[:2])
        tight.uploaded(upload[0], len(upload[1]), NOW.date())
        if len(order) == len(kept) // 2:
            break
    assert order == sorted(order) and len(order) == len(kept) // 2
    left = tight.pending_by_reason()
    for reason, c in by_reason.items():
        assert c.kept == c.uploaded + c.dropped + left.get(reason, 0), reason
