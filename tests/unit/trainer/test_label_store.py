from __future__ import annotations

import datetime as dt
import hashlib
import re
import threading
from pathlib import Path

import pytest

from linefleet_core.errors import LinefleetError, PermanentError
from tests.support.labelstate import assert_same_state
from tests.support.trainer_data import frame_payload, jpeg, override_event
from trainer.checks import RefusedEvents
from trainer.events import Decision, EventKind, NewEvent
from trainer.frames import FrameStore
from trainer.overrides import ingest
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
        model_version="surface-classifier@2",
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


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("actor", "a" * 129, "actor is 129 characters long (at most 128)"),
        ("cls", "x" * 64, "cls is 64 characters long (at most 63)"),
        ("actor", "ana\x00", "actor contains a NUL character"),
    ],
)
def test_text_a_database_would_refuse_or_cut_is_refused_on_every_backend(
    store: LabelStore, frame_ids: list[str], field: str, value: str, message: str
) -> None:
    event = NewEvent(**{**ann(frame_ids[0], "ok").__dict__, field: value})
    with pytest.raises(RefusedEvents, match=re.escape(message)):
        store.append([ann(frame_ids[1], "ok"), event])
    assert store.events() == []


def test_times_are_stored_as_utc_whatever_zone_they_came_in(
    store: LabelStore, frame_ids: list[str]
) -> None:
    eastern = dt.timezone(dt.timedelta(hours=-5))
    at = dt.datetime(2026, 11, 21, 18, 57, 2, 1000, tzinfo=eastern)
    naive = dt.datetime(2026, 11, 21, 23, 57, 2, 1000)
    store.append([NewEvent(**{**ann(frame_ids[0], "ok").__dict__, "at": at})])
    store.append([NewEvent(**{**ann(frame_ids[1], "ok").__dict__, "at": naive})])
    assert [e.at for e in store.events()] == [naive, naive]


def test_override_ingest_dedupes_by_device_and_seq(
    store: LabelStore, frames: FrameStore, tmp_path: Path
) -> None:
    data = jpeg(5)
    sha = hashlib.sha256(data).hexdigest()
    events = [override_event(7, sha, "oil"), override_event(7, sha, "oil")]
    first = ingest(store, frames, events, [frame_payload(data, "f-7")])
    assert (first.queued, first.duplicates) == (1, 1)
    again = ingest(store, frames, [override_event(7, sha, "dust")])
    assert (again.queued, again.duplicates) == (0, 1)
    (stored,) = store.events()
    assert (stored.source_id, stored.cls, stored.line_key) == (
        "tol-edge-01:7",
        "oil",
        "toledo/line-1",
    )
    assert stored.at == dt.datetime(2026, 11, 21, 23, 57, 2, 1000)  # sent as ...02.001Z
    # the database itself refuses a second row with the same device:seq
    from sqlalchemy import insert
    from sqlalchemy.exc import IntegrityError

    from trainer.store import EventRow

    row = {
        "kind": "override",
        "at": stored.at,
        "actor": "x",
        "frame": sha,
        "source_id": "tol-edge-01:7",
    }
    with pytest.raises(IntegrityError), store._engine.begin() as conn:
        conn.execute(insert(EventRow), [row])
    assert len(store.events()) == 1


def test_an_override_with_a_lone_surrogate_escape_is_invalid_not_a_crash(
    store: LabelStore, frames: FrameStore
) -> None:
    """`"predicted": "ok\\ud800"` parsed, passed validation, and stopped the ingest with
    UnicodeEncodeError from the database driver (exit 3 for `labels ingest-events`)."""
    data = jpeg(5)
    sha = hashlib.sha256(data).hexdigest()
    events = [override_event(7, sha, "oil", predicted="ok\ud800"), override_event(8, sha, "oil")]
    report = ingest(store, frames, events, [frame_payload(data, "f-7")])
    assert report.invalid == [
        "event 1: details.predicted: a string holds a lone surrogate escape "
        "(\\ud800-\\udfff unpaired): not Unicode text"
    ]
    assert report.queued == 1 and [e.source_id for e in store.events()] == ["tol-edge-01:8"]


def test_concurrent_writers_decide_an_override_once_and_keep_ids_in_order(
    store: LabelStore, store_url: str, frame_ids: list[str]
) -> None:
    override = NewEvent(
        EventKind.OVERRIDE, "insp", frame=frame_ids[0], cls="spot", taxonomy="surface-defects@1"
    )
    (ov,) = store.append([override])
    writers = [LabelStore.open(store_url, store.taxonomies) for _ in range(4)]
    outcomes: list[str] = []

    def decide(writer: LabelStore, who: int) -> None:
        try:
            writer.append([NewEvent(EventKind.QA, f"qa-{who}", target=ov, detail="confirm")])
            outcomes.append("written")
        except RefusedEvents:
            outcomes.append("refused")
        for n in range(5):  # and keep appending while the others do
            writer.append([ann(frame_ids[(who + n) % 6], "ok", who=f"ann-{who}")])

    threads = [threading.Thread(target=decide, args=(w, i)) for i, w in enumerate(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w in writers:
        w.close()
    assert sorted(outcomes) == ["refused", "refused", "refused", "written"]
    events = store.events()
    assert [e.id for e in events] == sorted(e.id for e in events) and len(events) == 22
    assert [e.kind for e in events].count(EventKind.QA) == 1
    assert_same_state(store.state(), replay(events, store.taxonomies))
