"""The replay floor per signing key (`linefleet_core.highwater`) and its home in edge state."""

from __future__ import annotations

from typing import Any

from edge_puller.state import LocalState
from edge_puller.target import Target
from linefleet_core.highwater import floor, marked, signer
from linefleet_core.signing import SigningKey
from linefleet_core.wire import Applied, DesiredState
from tests.support.wiredocs import desired_envelope
from tests.support.wiremodels import model_spec
from tests.unit.edge.documents import line_doc

A, B, C = (SigningKey.generate() for _ in range(3))
MODEL = model_spec("m@1", "1" * 64, 10, "file:///m1", ("ok", "scratch"), (1, 3, 8, 8))
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


def _signed(generation: int) -> tuple[dict[str, Any], Target]:
    """A document signed by A (as received) and the device's `Target` of it."""
    spec = {"heartbeat_seconds": 60, "lines": [line_doc(MODEL)]}
    document = A.sign(desired_envelope("plant", "dev-1", generation, spec))
    return document, Target(DesiredState.model_validate(document))


def test_edge_state_marks_the_signing_key_and_keeps_the_marks_across_a_restart() -> None:
    document, target = _signed(7)
    state = LocalState().with_desired(document, target)
    assert state.marks == {A.key_id: Applied(generation=7, content_hash=document["content_hash"])}
    assert LocalState.from_dict(state.to_dict()).marks == state.marks


def test_a_state_written_before_marks_existed_marks_its_documents_key() -> None:
    document, target = _signed(7)
    old = LocalState().with_desired(document, target).to_dict()
    del old["marks"]
    held = Applied(generation=7, content_hash=document["content_hash"])
    assert LocalState.from_dict(old).marks == {A.key_id: held}
