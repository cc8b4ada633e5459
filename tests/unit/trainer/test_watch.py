from __future__ import annotations

import pytest

from trainer.events import EventKind, NewEvent
from trainer.store import LabelStore
from trainer.watch import Verdict, WatchInputs, decide, new_labels_since


def _inputs(**kw: object) -> WatchInputs:
    base: dict[str, object] = {
        "dataset": "d" * 64,
        "dataset_frames": 100,
        "already_claimed": False,
        "new_labels": 0,
        "min_new_labels": 50,
    }
    return WatchInputs(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "verdict", "reason"),
    [
        ({}, Verdict.WAIT, "0/50 new label(s), no drift"),
        ({"new_labels": 50}, Verdict.TRAIN, "50 new label(s) since the last run"),
        ({"new_labels": 500, "already_claimed": True}, Verdict.ALREADY_TRAINED, "had a run"),
        ({"drift": {"a/b": 0.5, "c/d": 0.1}}, Verdict.TRAIN, "drift on a/b (worst 0.50 > 0.3)"),
        ({"drift": {"a/b": 0.3}}, Verdict.WAIT, "no drift"),
        ({"dataset_frames": 0, "new_labels": 99}, Verdict.WAIT, "no labelled frames"),
    ],
)
def test_decide(kw: dict[str, object], verdict: Verdict, reason: str) -> None:
    decision = decide(_inputs(**kw))
    assert decision.verdict is verdict and reason in decision.reason


def test_new_labels_count_annotations_confirmations_and_reviews(
    store: LabelStore, frame_ids: list[str]
) -> None:
    tax = "surface-defects@1"
    (a,) = store.append(
        [NewEvent(EventKind.ANNOTATION, "a", frame=frame_ids[0], cls="ok", taxonomy=tax)]
    )
    ov = NewEvent(EventKind.OVERRIDE, "i", frame=frame_ids[1], cls="spot", taxonomy=tax)
    (o1, o2) = store.append([ov, ov])
    store.append([NewEvent(EventKind.QA, "q", target=o1, detail="confirm")])
    store.append([NewEvent(EventKind.QA, "q", target=o2, detail="reject")])
    events = store.events()
    assert new_labels_since(events, 0) == 2
    assert new_labels_since(events, a) == 1
    assert store.last_trained_event() == 0
    store.record_dataset("x" * 64, tax, 2, events[-1].id)
    assert store.last_trained_event() == 0  # recorded but never trained
    assert store.claim_run("x" * 64, "test")
    assert store.last_trained_event() == events[-1].id and store.has_run("x" * 64)
