from __future__ import annotations

import json
from pathlib import Path

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
