from __future__ import annotations

import pytest

from linefleet_core.errors import LinefleetError, PermanentError
from trainer.checks import RefusedEvents
from trainer.events import Decision, EventKind, NewEvent
from trainer.store import LabelStore
from trainer.views import TaskKind, replay

A = EventKind.ANNOTATION


def ann(frame: str, cls: str, who: str = "ana", tax: str = "surface-defects@1") -> NewEvent:
    return NewEvent(A, who, frame=frame, cls=cls, taxonomy=tax)


def test_annotations_are_stored_with_frame_provenance(
    store: LabelStore, frame_ids: list[str]
) -> None:
    ids = store.append([ann(frame_ids[0], "scratch"), ann(frame_ids[3], "ok", "bo")])
    events = store.events()
    assert [e.id for e in events] == ids
    first = events[0]
    assert (first.site, first.line, first.camera, first.cls) == (
        "toledo",
        "line-1",
        "cam-1",
        "scratch",
    )
    assert events[1].line_key == "dresden/line-2"
    assert store.events(after=ids[0]) == events[1:]


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (ann("F0", "rust"), "unknown class 'rust' in surface-defects@1"),
        (ann("F0", "ok", tax="surface-defects@9"), "surface-defects@9' does not exist"),
        (ann("F0", "ok", tax="paint-defects@1"), "no such taxonomy"),
        (ann("f" * 64, "ok"), "not in the label store"),
        (ann("F0", "ok", who=" "), "name is empty"),
        (NewEvent(EventKind.QA, "qa", target=999, detail="confirm"), "not an override"),
        (NewEvent(EventKind.REVIEW, "qa", target=1, cls="dust"), "not an open re-review"),
    ],
)
def test_a_bad_event_refuses_the_whole_batch(
    store: LabelStore, frame_ids: list[str], event: NewEvent, message: str
) -> None:
    if event.frame == "F0":
        event = NewEvent(**{**event.__dict__, "frame": frame_ids[0]})
    with pytest.raises(RefusedEvents, match=message) as info:
        store.append([ann(frame_ids[1], "ok"), event])
    assert isinstance(info.value, LinefleetError)
    assert info.value.problems[0].startswith("event 2")
    assert store.events() == []


def test_events_cannot_be_updated_or_deleted_through_the_orm(
    store: LabelStore, frame_ids: list[str]
) -> None:
    from sqlalchemy.orm import Session

    from trainer.store import EventRow

    store.append([ann(frame_ids[0], "scratch")])
    with Session(store._engine) as s:
        row = s.get(EventRow, 1)
        assert row is not None
        row.cls = "ok"
        with pytest.raises(PermanentError, match="append-only"):
            s.commit()
    assert store.events()[0].cls == "scratch"


def test_override_needs_qa_and_confirmed_becomes_a_label(
    store: LabelStore, frame_ids: list[str]
) -> None:
    override = NewEvent(
        EventKind.OVERRIDE,
        "inspector-7",
        frame=frame_ids[0],
        cls="scratch",
        taxonomy="surface-defects@1",
        model_said="ok",
        model_version="surface-cnn@2",
        source_id="edge-1:42",
    )
    (ov,) = store.append([override])
    assert store.append([override]) == []  # the same edge event again: no-op
    state = replay(store.events(), store.taxonomies)
    assert [t.kind for t in state.tasks()] == [TaskKind.OVERRIDE]
    assert state.labels == {}
    store.append([NewEvent(EventKind.QA, "qa-lead", target=ov, detail=Decision.CONFIRM)])
    state = replay(store.events(), store.taxonomies)
    assert state.tasks() == []
    assert state.labels[ov].cls == "scratch" and state.labels[ov].origin is EventKind.OVERRIDE
    with pytest.raises(RefusedEvents, match="already confirmed"):
        store.append([NewEvent(EventKind.QA, "qa-lead", target=ov, detail="reject")])


def test_rejected_override_never_becomes_a_label(store: LabelStore, frame_ids: list[str]) -> None:
    override = NewEvent(
        EventKind.OVERRIDE, "insp", frame=frame_ids[0], cls="spot", taxonomy="surface-defects@1"
    )
    (ov,) = store.append([override])
    store.append([NewEvent(EventKind.QA, "qa", target=ov, detail="reject")])
    state = replay(store.events(), store.taxonomies)
    assert state.labels == {} and state.tasks() == []


def test_new_annotators_first_labels_are_queued_for_audit(
    store: LabelStore, frame_ids: list[str]
) -> None:
    ids = store.append([ann(f, "ok", "newbie") for f in frame_ids])
    state = replay(store.events(), store.taxonomies)
    assert [t.id for t in state.tasks() if t.kind is TaskKind.AUDIT] == ids
    store.append([NewEvent(EventKind.QA, "lead", target=ids[0], detail="reject")])
    state = replay(store.events(), store.taxonomies)
    assert ids[0] not in state.labels and ids[0] in state.rejected
    assert len([t for t in state.tasks() if t.kind is TaskKind.AUDIT]) == 5


def test_audit_stops_after_the_first_hundred(store: LabelStore, frame_ids: list[str]) -> None:
    store.append([ann(frame_ids[i % 6], "ok", "ana") for i in range(103)])
    state = replay(store.events(), store.taxonomies)
    audits = [t.id for t in state.tasks() if t.kind is TaskKind.AUDIT]
    assert audits == list(range(1, 101))


def test_runs_are_claimed_once_per_dataset_version(store: LabelStore) -> None:
    assert store.record_dataset("d" * 64, "surface-defects@1", 10, 5)
    assert not store.record_dataset("d" * 64, "surface-defects@1", 10, 5)
    assert store.claim_run("d" * 64, "threshold")
    assert not store.claim_run("d" * 64, "drift")


def test_an_unusable_database_url_is_a_clear_error(tmp_path: object) -> None:
    with pytest.raises(LinefleetError, match="label store"):
        LabelStore.open("nosuchdialect://x", {})


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: object) -> None:
    from pathlib import Path

    bad = Path(str(tmp_path)) / "labels.db"
    bad.write_text("this is not sqlite " * 100)
    with pytest.raises(LinefleetError, match="cannot open"):
        LabelStore.open(f"sqlite:///{bad}", {})
