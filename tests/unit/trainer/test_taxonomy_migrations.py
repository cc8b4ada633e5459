from __future__ import annotations

import pytest

from trainer.checks import RefusedEvents
from trainer.events import EventKind, NewEvent
from trainer.migrations import plan_migrations
from trainer.store import LabelStore
from trainer.views import LabelState, TaskKind, replay


def _state(store: LabelStore) -> LabelState:
    return replay(store.events(), store.taxonomies)


def _migrate_all(store: LabelStore, upto: int | None = None) -> None:
    while plan := plan_migrations(_state(store), store.taxonomies, "surface-defects", upto):
        store.append(plan)


def test_rename_migrates_automatically_split_opens_a_review(
    store: LabelStore, frame_ids: list[str]
) -> None:
    labels = {"ok": 0, "spot": 1, "contamination": 2}
    ids = store.append(
        [
            NewEvent(
                EventKind.ANNOTATION, "ana", frame=frame_ids[i], cls=c, taxonomy="surface-defects@1"
            )
            for c, i in labels.items()
        ]
    )
    _migrate_all(store, upto=2)
    state = _state(store)
    by_id = state.labels
    assert (by_id[ids[0]].cls, by_id[ids[0]].taxonomy) == ("ok", "surface-defects@2")
    assert (by_id[ids[1]].cls, by_id[ids[1]].taxonomy) == ("pit", "surface-defects@2")
    assert by_id[ids[2]].cls is None and by_id[ids[2]].made_under == "surface-defects@1"
    migrations = [e for e in store.events() if e.kind is EventKind.MIGRATION]
    assert [m.detail for m in migrations] == ["same", "renamed", "split"]
    (task,) = [t for t in state.tasks() if t.kind is TaskKind.REVIEW]
    assert task.choices == ("dust", "oil") and task.frame == frame_ids[2]
    assert plan_migrations(state, store.taxonomies, "surface-defects", 2) == []  # idempotent

    with pytest.raises(RefusedEvents, match="not a choice"):
        store.append([NewEvent(EventKind.REVIEW, "lead", target=task.id, cls="scratch")])
    store.append(
        [
            NewEvent(
                EventKind.REVIEW, "lead", target=task.id, cls="oil", taxonomy="surface-defects@2"
            )
        ]
    )
    state = _state(store)
    assert state.labels[ids[2]].cls == "oil" and state.tasks() == [
        t for t in state.tasks() if t.kind is TaskKind.AUDIT
    ]


def test_merge_is_automatic_deprecation_needs_review_and_reviews_carry_forward(
    store: LabelStore, frame_ids: list[str]
) -> None:
    ids = store.append(
        [
            NewEvent(
                EventKind.ANNOTATION,
                "ana",
                frame=frame_ids[0],
                cls="dust",
                taxonomy="surface-defects@2",
            ),
            NewEvent(
                EventKind.ANNOTATION,
                "ana",
                frame=frame_ids[1],
                cls="pit",
                taxonomy="surface-defects@2",
            ),
            NewEvent(
                EventKind.ANNOTATION,
                "ana",
                frame=frame_ids[2],
                cls="contamination",
                taxonomy="surface-defects@1",
            ),
        ]
    )
    _migrate_all(store)
    state = _state(store)
    assert (state.labels[ids[0]].cls, state.labels[ids[0]].taxonomy) == (
        "particle",
        "surface-defects@3",
    )
    assert state.labels[ids[1]].cls is None and state.labels[ids[1]].taxonomy == "surface-defects@3"
    # the v1 contamination label waits at v2 for its split decision; it does not jump ahead
    assert state.labels[ids[2]].taxonomy == "surface-defects@2"
    reviews = {
        state.labels[ids[1]].pending: ("dent", "surface-defects@3"),
        state.labels[ids[2]].pending: ("dust", "surface-defects@2"),
    }
    deprecated = next(t for t in state.tasks() if t.id == state.labels[ids[1]].pending)
    assert deprecated.choices == ("ok", "scratch", "particle", "dent")
    store.append(
        [
            NewEvent(EventKind.REVIEW, "lead", target=t, cls=c, taxonomy=tx)
            for t, (c, tx) in reviews.items()
            if t
        ]
    )
    _migrate_all(store)
    state = _state(store)
    assert {lab.cls for lab in state.labels.values()} == {"particle", "dent"}
    assert {lab.taxonomy for lab in state.labels.values()} == {"surface-defects@3"}
    kinds = [e.detail for e in store.events() if e.kind is EventKind.MIGRATION]
    assert kinds == ["merged", "deprecated", "split", "merged"]
