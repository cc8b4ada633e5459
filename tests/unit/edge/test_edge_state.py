from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_puller.localstatus import local_status
from edge_puller.state import ActiveLine, Failure, LocalState, StateStore
from edge_puller.target import CandidateSpec, ModelSpec
from linefleet_core.atomic import clean_temps, write_atomic
from linefleet_core.errors import PermanentError
from tests.unit.edge.helpers import target


def _spec(n: int) -> ModelSpec:
    return ModelSpec(
        ref=f"m@{n}",
        sha256=f"{n:064x}",
        size=10,
        url=f"file:///models/{n}",
        classes=("ok", "scratch"),
        input_shape=(1, 3, 8, 8),
        reference_stats={"brightness": 0.4},
    )


def test_fresh_directory_gives_empty_state(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state").load()
    assert state == LocalState()
    assert (tmp_path / "state").is_dir()


def test_state_round_trips_through_disk(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    t = target(_spec(1), CandidateSpec(_spec(2), "canary", 0.2), previous=_spec(3), generation=7)
    state = LocalState(
        document={"generation": 7, "anything": [1, 2]},
        target=t,
        generation=7,
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


def test_half_written_temp_file_is_ignored_and_removed(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.save(LocalState(generation=3))
    torn = tmp_path / f".{StateStore.FILE}.999.tmp"
    torn.write_bytes(b'{"format": 1, "generation": 9')  # a crash mid-write
    assert store.load().generation == 3
    assert not torn.exists()


def test_a_reader_beside_the_agent_leaves_its_write_in_progress_alone(tmp_path: Path) -> None:
    # `edge status` runs while the agent works: a temp file may be the agent's next state.
    store = StateStore(tmp_path)
    store.save(LocalState(generation=3))
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
    written = LocalState(generation=3).to_dict()
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
    old = LocalState(generation=1, failures={"a" * 64: Failure("hash-mismatch", "x", 1)})
    t = target(_spec(1), generation=2)
    new = old.with_desired({"generation": 2}, t)
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
