"""The replay floor per signing key (`linefleet_core.highwater`) and its home in edge state."""

from __future__ import annotations

from edge_puller.state import LocalState
from edge_puller.target import Target
from linefleet_core.highwater import floor, marked, signer
from linefleet_core.signing import SigningKey
from linefleet_core.wire import Applied

A, B, C = (SigningKey.generate() for _ in range(3))
PINNED = {A.key_id: A.public, B.key_id: B.public}


def mark(generation: int) -> Applied:
    return Applied(generation=generation, content_hash=f"{generation:064x}")


def test_the_floor_is_the_newest_mark_of_a_pinned_key() -> None:
    marks = {A.key_id: mark(40), B.key_id: mark(41), C.key_id: mark(2**62)}
    assert floor(marks, PINNED) == mark(41)  # C is not pinned: its forgery does not count
    assert floor(marks, {A.key_id: A.public}) == mark(40)
    assert floor(marks, {}) is None
    assert floor({}, PINNED) is None


def test_a_mark_only_moves_forward() -> None:
    marks = marked({}, A.key_id, mark(40))
    assert marked(marks, A.key_id, mark(39)) == {A.key_id: mark(40)}
    assert marked(marks, A.key_id, mark(41)) == {A.key_id: mark(41)}
    assert marked(marks, B.key_id, mark(3)) == {A.key_id: mark(40), B.key_id: mark(3)}


def test_the_signer_is_read_loosely() -> None:
    assert signer({"signature": {"key_id": "ab" * 8}}) == "ab" * 8
    assert signer({"signature": "x"}) is None
    assert signer({}) is None


def _target(generation: int) -> Target:
    return Target("plant", "dev-1", generation, "0" * 40, f"{generation:064x}", {}, 60)


def test_edge_state_marks_the_signing_key_and_keeps_the_marks_across_a_restart() -> None:
    document = {"generation": 7, "signature": {"key_id": A.key_id}}
    state = LocalState().with_desired(document, _target(7))
    assert state.marks == {A.key_id: mark(7)}
    assert LocalState.from_dict(state.to_dict()).marks == state.marks


def test_a_state_written_before_marks_existed_marks_its_documents_key() -> None:
    document = {"generation": 7, "signature": {"key_id": A.key_id}}
    old = LocalState().with_desired(document, _target(7)).to_dict()
    del old["marks"]
    assert LocalState.from_dict(old).marks == {A.key_id: mark(7)}
