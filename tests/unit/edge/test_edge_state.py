from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from edge_puller.localstatus import local_status
from edge_puller.runtime import contract_of
from edge_puller.state import ActiveLine, Failure, LocalState, StateStore
from edge_puller.target import Target
from linefleet_core.atomic import clean_temps, write_atomic
from linefleet_core.errors import PermanentError
from linefleet_core.modelio import Contract
from linefleet_core.wire import Applied, ArtifactRef, ModelSpec
from tests.support.wiremodels import candidate, model_spec
from tests.unit.edge.helpers import target


def _spec(n: int) -> ModelSpec:
    return model_spec(
        f"m@{n}",
        f"{n:064x}",
        10,
        f"file:///models/{n}",
        ("ok", "scratch"),
        (1, 3, 8, 8),
        reference_stats={"brightness": 0.4},
    )


def _held(generation: int) -> LocalState:
    """A state holding a (one-line) document of `generation`, as intake leaves it."""
    t = target(_spec(1), generation=generation)
    return LocalState().with_desired(t.document.model_dump(mode="json"), t)


def test_fresh_directory_gives_empty_state(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state").load()
    assert state == LocalState()
    assert (tmp_path / "state").is_dir()


def test_state_round_trips_through_disk(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    t = target(_spec(1), candidate(_spec(2), "canary", 0.2), previous=_spec(3), generation=7)
    state = LocalState(
        document={**t.document.model_dump(mode="json"), "anything": [1, 2]},  # as received
        target=t,
        applied_generation=6,
        applied_hash="ab" * 32,
        applied_commit="1" * 40,
        reported="g7 a6",
        active={
            "plant/line-1": ActiveLine(_spec(3), _spec(1), "b", t.lines["plant/line-1"].candidate)
        },
        failures={f"{2:064x}": Failure("load-failed", "boom", 7)},
        last_sync=123.5,
        removed_at=130.0,
    )
    store.save(state)
    assert store.load() == state
    assert store.load().generation == 7
    written = json.loads((tmp_path / StateStore.FILE).read_text())
    assert "target" not in written and "generation" not in written  # derived, not kept twice


def test_half_written_temp_file_is_ignored_and_removed(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.save(_held(3))
    torn = tmp_path / f".{StateStore.FILE}.999.tmp"
    torn.write_bytes(b'{"format": 1, "generation": 9')  # a crash mid-write
    assert store.load().generation == 3
    assert not torn.exists()


def test_a_reader_beside_the_agent_leaves_its_write_in_progress_alone(tmp_path: Path) -> None:
    # `edge status` runs while the agent works: a temp file may be the agent's next state.
    store = StateStore(tmp_path)
    store.save(_held(3))
    in_progress = tmp_path / f".{StateStore.FILE}.4242.tmp"
    in_progress.write_bytes(b'{"format": 1, "generation": 4')
    assert StateStore(tmp_path).read().generation == 3
    assert in_progress.exists()
    assert local_status(tmp_path)["generation"] == 3
    assert in_progress.exists()


def test_corrupt_state_is_a_clear_permanent_error(tmp_path: Path) -> None:
    (tmp_path / StateStore.FILE).write_text("{not json")
    with pytest.raises(PermanentError, match=r"state\.json: unreadable local state"):
        StateStore(tmp_path).load()


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    (tmp_path / StateStore.FILE).write_text(json.dumps({"format": 99}))
    with pytest.raises(PermanentError, match="unsupported state format 99"):
        StateStore(tmp_path).load()


def test_removal_is_read_back_and_older_state_files_mean_in_the_fleet(tmp_path: Path) -> None:
    written = _held(3).to_dict()
    assert written["removed_at"] is None
    del written["removed_at"]  # a state.json from before removal was persisted
    (tmp_path / StateStore.FILE).write_text(json.dumps(written))
    assert StateStore(tmp_path).load().removed_at is None
    (tmp_path / StateStore.FILE).write_text(json.dumps({**written, "removed_at": "yesterday"}))
    with pytest.raises(PermanentError, match="expected a Unix time or null"):
        StateStore(tmp_path).load()


def test_write_atomic_replaces_content_and_leaves_no_temp(tmp_path: Path) -> None:
    target_file = tmp_path / "x.json"
    write_atomic(target_file, b"one")
    write_atomic(target_file, b"two")
    assert target_file.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
    assert clean_temps(tmp_path) == []


def test_a_new_generation_forgets_old_failures() -> None:
    old = replace(_held(1), failures={"a" * 64: Failure("hash-mismatch", "x", 1)})
    t = target(_spec(1), generation=2)
    new = old.with_desired(t.document.model_dump(mode="json"), t)
    assert new.generation == 2 and new.failures == {} and new.last_sync is not None


def test_ab_switch_keeps_models_in_their_slots() -> None:
    one, two, three = _spec(1), _spec(2), _spec(3)
    line = ActiveLine(slot_a=one, slot_b=None, serving_slot="a")
    upgraded = line.switched_to(two, standby=one, candidate=None)
    assert (upgraded.serving_slot, upgraded.slot_a, upgraded.slot_b) == ("b", one, two)
    assert upgraded.standby == one
    rolled_back = upgraded.switched_to(one, standby=two, candidate=None)
    assert (rolled_back.serving_slot, rolled_back.slot_a, rolled_back.slot_b) == ("a", one, two)
    third = rolled_back.switched_to(three, standby=one, candidate=None)
    assert third.serving == three and third.standby == one


FORMAT_1 = Path(__file__).parents[2] / "golden" / "edge" / "state-format-1.json"
"""A `state.json` written by the previous agent (format 1, linefleet d596ec8, its own code):
generation 5 held (a canary candidate), generation 4's serving model (contract v2, which the
document no longer names) kept hot as the standby, a failure, a mark."""


def test_a_state_written_by_the_previous_agent_is_migrated_on_load(tmp_path: Path) -> None:
    old = json.loads(FORMAT_1.read_text())
    (tmp_path / StateStore.FILE).write_text(FORMAT_1.read_text())
    state = StateStore(tmp_path).load()
    assert state.document == old["document"]  # still exactly as received
    assert state.target is not None and state.target.document.generation == 5
    assert state.generation == 5 and state.applied_generation == 5
    assert state.failures == {f"{9:064x}": Failure("hash-mismatch", "sha256 differs", 5)}
    assert state.marks == {k: Applied.model_validate(m) for k, m in old["marks"].items()}
    assert (state.reported, state.last_sync) == ("g5 a5", 1_800_000_000.5)
    line = state.target.lines["plant/line-1"]
    active = state.active["plant/line-1"]
    # models the document names are the document's own
    assert active.serving == line.serving and active.candidate == line.candidate
    assert active.serving_slot == "b"
    # the standby it no longer names is rebuilt from the flat form, the same model to the runtime
    standby = active.standby
    flat = old["active"]["plant/line-1"]["slot_a"]
    assert standby is not None and standby.ref == "m@1"
    assert standby.artifact == ArtifactRef(
        url=flat["url"], sha256=flat["sha256"], size=flat["size"]
    )
    assert standby.reference_stats == flat["reference_stats"]
    assert contract_of(standby) == Contract(
        classes=("ok", "scratch", "dent"),
        height=64,
        width=64,
        channels=3,
        color="bgr",
        layout="NHWC",
        resize="letterbox",
        scale=1.0,
        mean=(0.5, 0.5, 0.5),
        std=(0.2, 0.2, 0.2),
        tiling=(32, 4),
        input_name="images",
        outputs={"probabilities": "probs"},
    )
    # the next save writes format 2, which reads back the same
    StateStore(tmp_path).save(state)
    written = json.loads((tmp_path / StateStore.FILE).read_text())
    assert written["format"] == 2 and "target" not in written
    assert StateStore(tmp_path).load() == state


def test_a_previous_agents_state_without_its_document_is_empty_but_not_lost(
    tmp_path: Path,
) -> None:
    old = {**json.loads(FORMAT_1.read_text()), "document": None, "target": None, "active": {}}
    (tmp_path / StateStore.FILE).write_text(json.dumps(old))
    state = StateStore(tmp_path).load()
    assert state.target is None and state.generation == 0
    assert state.failures and state.marks  # the rest is kept


def test_the_target_is_derived_from_the_document() -> None:
    t = target(_spec(1), generation=3)
    raw = t.document.model_dump(mode="json")
    loaded = LocalState.from_dict({**LocalState().with_desired(raw, t).to_dict()})
    assert loaded.target == Target(t.document) and loaded.document == raw
