"""Audit samples from the edge: they become label tasks, and their labels give each line a field
escape rate (defective among the frames the model called ok) with a 95% Wilson interval."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from linefleet_core.errors import UsageError
from linefleet_core.wire import FrameMeta
from trainer.audits import field_escapes, sample_event, sample_label
from trainer.events import EventKind, NewEvent
from trainer.store import LabelStore
from trainer.views import TaskKind, replay

TAX = "surface-defects@2"


def meta(reason: Any, predicted: str = "ok", line: str = "toledo/line-1") -> FrameMeta:
    """Frame metadata as the edge sends it (built without the wire's reason check, so the
    `audit` reason the edge may adopt is covered too)."""
    return FrameMeta.model_construct(
        protocol=1, kind="Frame", site="toledo", device="tol-edge-01", line=line,
        camera="cam-1", frame_id="f-1", captured_at=dt.datetime(2026, 12, 1, 8, tzinfo=dt.UTC),
        reason=reason, model="surface-classifier@2", predicted=predicted, confidence=0.97,
        sha256="0" * 64, size=1,
    )  # fmt: skip


@pytest.mark.parametrize("reason", ["audit", "sample"])
def test_both_audit_reasons_make_a_sample_event(reason: str) -> None:
    new = sample_event(meta(reason), "a" * 64)
    assert new is not None
    assert (new.kind, new.actor, new.frame, new.detail) == (
        EventKind.SAMPLE, "tol-edge-01", "a" * 64, reason,
    )  # fmt: skip
    assert (new.model_said, new.model_version, new.source_id) == (
        "ok", "surface-classifier@2", f"sample:{'a' * 64}",
    )  # fmt: skip
    assert new.at == dt.datetime(2026, 12, 1, 8)  # UTC, no zone, as the store keeps times


@pytest.mark.parametrize("reason", ["defect", "uncertain", "disagreement", "novel"])
def test_frames_kept_for_other_reasons_are_not_samples(reason: str) -> None:
    assert sample_event(meta(reason), "a" * 64) is None


def _sample(sha: str, said: str = "ok", model: str = "surface-classifier@2") -> NewEvent:
    return NewEvent(
        EventKind.SAMPLE, "tol-edge-01", frame=sha, detail="audit", model_said=said,
        model_version=model, source_id=f"sample:{sha}",
    )  # fmt: skip


def _label(sha: str, cls: str, who: str = "ana") -> NewEvent:
    return NewEvent(EventKind.ANNOTATION, who, frame=sha, cls=cls, taxonomy=TAX)


def test_samples_are_label_tasks_until_their_frame_has_a_label(store: LabelStore) -> None:
    shas = [f"{i:064x}" for i in range(3)]
    for sha in shas:
        store.register_frame(sha, "toledo", "line-1", "cam-1")
    ids = store.append([_sample(sha) for sha in shas])
    assert store.append([_sample(shas[0])]) == []  # the same frame ingested again: a no-op
    tasks = [t for t in store.state().tasks() if t.kind is TaskKind.SAMPLE]
    assert [(t.id, t.frame, t.line_key) for t in tasks] == [
        (i, sha, "toledo/line-1") for i, sha in zip(ids, shas, strict=True)
    ]
    assert (
        "label this audit frame from tol-edge-01: surface-classifier@2 said ok" in tasks[0].summary
    )
    store.append([sample_label(store.state(), ids[1], "scratch", "lead", TAX)])
    store.append([_label(shas[2], "ok")])  # labelled any other way closes it too
    assert [t.id for t in store.state().tasks() if t.kind is TaskKind.SAMPLE] == [ids[0]]
    with pytest.raises(UsageError, match="not a sample task"):
        sample_label(store.state(), 10_000, "ok", "lead", TAX)


def test_the_escape_rate_is_defective_of_labelled_samples_with_its_wilson_interval(
    store: LabelStore,
) -> None:
    frames = {f"{i:064x}": ("toledo", "line-1") for i in range(12)}
    frames |= {f"{i:064x}": ("dresden", "line-2") for i in range(12, 15)}
    for sha, (site, line) in frames.items():
        store.register_frame(sha, site, line, "cam-1")
    shas = list(frames)
    batch = [_sample(sha) for sha in shas[:10]]
    batch.append(_sample(shas[10], said="scratch"))  # not called ok: no part of the estimate
    batch.append(_sample(shas[11], model="surface-classifier@3"))
    batch += [_sample(sha) for sha in shas[12:]]
    store.append(batch)
    # line-1: 8 labelled (2 defective); 2 never labelled; one disputed (annotators tie)
    labels = [_label(shas[0], "scratch"), _label(shas[1], "oil")]
    labels += [_label(sha, "ok") for sha in shas[2:7]]
    labels += [_label(shas[7], "ok"), _label(shas[7], "dust", "bob")]
    labels += [_label(shas[10], "scratch"), _label(shas[11], "ok")]
    store.append(labels)
    found = field_escapes(store.state())
    assert found == field_escapes(replay(store.events(), store.taxonomies))
    one = found["toledo/line-1"]
    assert (one.sampled, one.labelled) == (11, 8)  # 10 + the @3 sample; shas[7] is disputed
    assert one.rate is not None and (one.rate.count, one.rate.of) == (2, 8)
    assert one.rate.value == pytest.approx(0.25)
    # Wilson 95% for 2 of 8, worked by hand: centre 0.3311, half-width 0.2596
    assert one.rate.low == pytest.approx(0.0715, abs=2e-4)
    assert one.rate.high == pytest.approx(0.5907, abs=2e-4)
    assert {m: (r.count, r.of) for m, r in one.by_model.items()} == {
        "surface-classifier@2": (2, 7), "surface-classifier@3": (0, 1),
    }  # fmt: skip
    two = found["dresden/line-2"]
    assert (two.sampled, two.labelled, two.rate) == (3, 0, None)
