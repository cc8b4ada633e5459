from __future__ import annotations

from pathlib import Path

import pytest

from linefleet_core.taxonomy import Taxonomy
from tests.support.postgres import Postgres
from trainer.datasets import HOLDOUT_PERCENT, Split, build, load_manifest, split_of
from trainer.events import EventKind, NewEvent
from trainer.migrations import plan_migrations
from trainer.store import LabelStore
from trainer.views import replay

V1 = "surface-defects@1"


def _ann(frame: str, cls: str, who: str = "ana", tax: str = V1) -> NewEvent:
    return NewEvent(EventKind.ANNOTATION, who, frame=frame, cls=cls, taxonomy=tax)


def test_split_is_a_function_of_the_frame_alone_and_near_the_target_share() -> None:
    frames = [f"{i:064x}" for i in range(2000)]
    holdout = [f for f in frames if split_of(f) is Split.HOLDOUT]
    assert abs(len(holdout) / len(frames) - HOLDOUT_PERCENT / 100) < 0.03
    assert [split_of(f) for f in frames] == [split_of(f) for f in frames]


def test_dataset_hash_is_deterministic_and_covers_labels(
    store: LabelStore, frame_ids: list[str], tmp_path: Path
) -> None:
    store.append([_ann(f, "ok") for f in frame_ids])
    tax = store.taxonomies[V1]
    first = build(replay(store.events(), store.taxonomies), tax)
    again = build(replay(store.events(), store.taxonomies), tax)
    assert first.hash == again.hash and len(first.items) == 6
    assert first.lines() == ["dresden/line-2", "toledo/line-1"]
    assert load_manifest(first.write(tmp_path)) == first

    store.append([_ann(frame_ids[0], "scratch", "bo"), _ann(frame_ids[0], "scratch", "cy")])
    second = build(replay(store.events(), store.taxonomies), tax)
    assert second.hash != first.hash
    changed = {i.frame: i.cls for i in second.items}
    assert changed[frame_ids[0]] == "scratch"  # 2 of 3 annotators
    # the split of every frame is unchanged between versions
    assert {i.frame: i.split for i in first.items} == {i.frame: i.split for i in second.items}


def test_confirmed_override_wins_ties_are_disputed_and_old_versions_are_left_out(
    store: LabelStore, frame_ids: list[str]
) -> None:
    store.append(
        [
            _ann(frame_ids[0], "ok"),
            _ann(frame_ids[0], "spot", "bo"),  # tie -> disputed
            _ann(frame_ids[1], "ok"),
            _ann(frame_ids[2], "contamination"),
        ]
    )
    (ov,) = store.append(
        [
            NewEvent(
                EventKind.OVERRIDE,
                "insp",
                frame=frame_ids[1],
                cls="scratch",
                taxonomy=V1,
                model_said="ok",
                model_version="surface-classifier@1",
            )
        ]
    )
    pending = build(replay(store.events(), store.taxonomies), store.taxonomies[V1])
    assert {i.frame: i.cls for i in pending.items}[frame_ids[1]] == "ok"  # not confirmed yet
    store.append([NewEvent(EventKind.QA, "lead", target=ov, detail="confirm")])
    state = replay(store.events(), store.taxonomies)
    version = build(state, store.taxonomies[V1])
    assert {i.frame: i.cls for i in version.items} == {
        frame_ids[1]: "scratch",
        frame_ids[2]: "contamination",
    }
    assert version.excluded == {"disputed (tied annotators)": 1}
    at_v2 = build(state, store.taxonomies["surface-defects@2"])
    assert at_v2.items == () and at_v2.excluded == {"under surface-defects@1": 5}


@pytest.mark.integration
def test_the_same_events_give_the_same_dataset_hash_on_sqlite_and_postgresql(
    postgres: Postgres, taxes: dict[str, Taxonomy], tmp_path: Path
) -> None:
    frames = [f"{i:064x}" for i in range(8)]
    hashes, manifests = [], []
    for url in (f"sqlite:///{tmp_path / 'labels.db'}", postgres.create_database()):
        store = LabelStore.open(url, taxes)
        for i, sha in enumerate(frames):
            store.register_frame(sha, "toledo" if i < 4 else "dresden", "line-1", "cam-1")
        store.append([_ann(f, "contamination" if i % 3 else "ok") for i, f in enumerate(frames)])
        (ov,) = store.append(
            [NewEvent(EventKind.OVERRIDE, "insp", frame=frames[0], cls="scratch", taxonomy=V1)]
        )
        store.append([NewEvent(EventKind.QA, "lead", target=ov, detail="confirm")])
        store.append(plan_migrations(store.state(), taxes, "surface-defects", upto=2))
        version = build(store.state(), taxes["surface-defects@2"])
        hashes.append(version.hash)
        manifests.append(version.manifest())
        store.close()
    assert hashes[0] == hashes[1]
    assert manifests[0] == manifests[1]
    assert manifests[0]["excluded"] == {"awaiting review": 5}
