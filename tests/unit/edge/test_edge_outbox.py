from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_puller.outbox import Outbox


def _event(seq: int) -> bytes:
    return json.dumps({"seq": seq}).encode()


def test_events_get_increasing_sequence_numbers_across_restarts(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db")
    assert [box.put_event("t/events", _event) for _ in range(3)] == [1, 2, 3]
    box.close()
    again = Outbox(tmp_path / "outbox.db")
    assert again.put_event("t/events", _event) == 4
    assert again.size() == 4


def test_messages_leave_in_order_and_only_after_ack(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db")
    for _ in range(3):
        box.put_event("t/events", _event)
    first = box.first()
    assert first is not None and json.loads(first.payload) == {"seq": 1}
    assert box.first() == first  # not acknowledged: offered again
    box.ack(first.id)
    second = box.first()
    assert second is not None and json.loads(second.payload) == {"seq": 2}


def test_undelivered_messages_survive_a_restart(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db")
    box.put_event("t/events", _event)
    box.put_report("t/reported", b"r1")
    del box  # no close: as after a crash
    again = Outbox(tmp_path / "outbox.db")
    kinds = []
    while (message := again.first()) is not None:
        kinds.append((message.kind, message.retain))
        again.ack(message.id)
    assert kinds == [("event", False), ("report", True)]


def test_a_newer_report_replaces_an_undelivered_one(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db")
    box.put_report("t/reported", b"old")
    box.put_event("t/events", _event)
    box.put_report("t/reported", b"new")
    payloads = []
    while (message := box.first()) is not None:
        payloads.append(message.payload)
        box.ack(message.id)
    assert payloads == [_event(1), b"new"]


def test_bounded_outbox_drops_oldest_events_and_counts_them(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db", max_messages=3)
    for _ in range(5):
        box.put_event("t/events", _event)
    assert box.size() == 3
    assert box.counter("dropped_events") == 2
    first = box.first()
    assert first is not None and json.loads(first.payload) == {"seq": 3}


def test_several_events_are_stored_in_one_transaction_or_not_at_all(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db")
    box.put_event("t/events", _event)

    def broken(seq: int) -> bytes:
        raise ValueError("cannot build")

    with pytest.raises(ValueError):
        box.put_events("t/events", [(_event, ("t/frames", b"f1")), (broken, None)])
    assert (box.size(), box.counter("event_seq")) == (1, 1)  # nothing stored, no seq used

    seqs = box.put_events(
        "t/events", [(_event, ("t/frames", b"f1")), (_event, ("t/frames", b"f2"))]
    )
    assert seqs == [2, 3]
    sent = []
    while (message := box.first()) is not None:
        sent.append((message.kind, message.payload))
        box.ack(message.id)
    assert sent == [
        ("event", _event(1)),
        ("frame", b"f1"),
        ("event", _event(2)),
        ("frame", b"f2"),
        ("event", _event(3)),
    ]
