"""The durable outbox: every report and event goes to disk before it goes to the broker.

SQLite in WAL mode with `synchronous=FULL`: a message is on disk when `put` returns, so a
device that restarts while offline loses nothing. Messages leave in insertion order, one at
a time, and are deleted only after the broker's PUBACK (`ack`). Events get a per-device
sequence number from a counter stored in the same transaction, strictly increasing across
restarts, so the receiver drops duplicates (`seq <= last seen`). The sequence belongs to this
outbox's `install` id, a random id created with the database: a reinstalled device (storage
wiped, `seq` from 1 again) has a new one, so its events are not taken for duplicates.

Reports are full snapshots (retained on the broker): a new report replaces any older report
still waiting, so hours offline do not queue hours of heartbeats. Events are never merged.
An event about a frame (an inspector's override) carries the frame as a message of its own,
queued just before it. The queue is bounded; past `max_messages` the oldest events (and
frames) are dropped and counted.

The agent and `linefleet edge override` write to the same file from two processes: SQLite's
locking (`BEGIN IMMEDIATE`, a busy timeout) keeps the sequence counter strict across both.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class Message:
    id: int
    kind: str
    topic: str
    payload: bytes
    retain: bool


class Outbox:
    def __init__(self, path: Path, max_messages: int = 100_000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.max_messages = max_messages
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None, timeout=10.0
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT OR IGNORE INTO counters(name, value) VALUES('install_id', ?)",
                (secrets.randbits(63) or 1,),
            )
        self.install = f"{self.counter('install_id'):016x}"
        """This installation's id (16 hex digits), sent with every event as `install`."""

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def put_event(
        self, topic: str, build: Callable[[int], bytes], frame: tuple[str, bytes] | None = None
    ) -> int:
        """Store the event `build(seq)` under the next sequence number; return that number.

        `frame` (topic, `LFF1` payload) is the frame the event is about: stored in the same
        transaction, just before the event, so it reaches the receiver first.
        """
        return self.put_events(topic, [(build, frame)])[0]

    def put_events(
        self,
        topic: str,
        events: Sequence[tuple[Callable[[int], bytes], tuple[str, bytes] | None]],
    ) -> list[int]:
        """Store several events (each with its frame, as in `put_event`) in one transaction,
        under consecutive sequence numbers: all of them are queued, or none."""
        seqs: list[int] = []
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute("SELECT value FROM counters WHERE name='event_seq'").fetchone()
            last = row[0] if row else 0
            for build, frame in events:
                last += 1
                if frame is not None:
                    self._db.execute(
                        "INSERT INTO outbox(kind, topic, payload, retain) VALUES('frame', ?, ?, 0)",
                        frame,
                    )
                self._db.execute(
                    "INSERT INTO outbox(kind, topic, payload, retain) VALUES('event', ?, ?, 0)",
                    (topic, build(last)),
                )
                seqs.append(last)
            self._db.execute(
                "INSERT INTO counters(name, value) VALUES('event_seq', ?) "
                "ON CONFLICT(name) DO UPDATE SET value=excluded.value",
                (last,),
            )
            self._trim()
        return seqs

    def put_report(self, topic: str, payload: bytes) -> None:
        """Store a report snapshot, replacing any report to `topic` not yet delivered."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM outbox WHERE kind='report' AND topic=?", (topic,))
            self._db.execute(
                "INSERT INTO outbox(kind, topic, payload, retain) VALUES('report', ?, ?, 1)",
                (topic, payload),
            )

    def first(self) -> Message | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, kind, topic, payload, retain FROM outbox ORDER BY id LIMIT 1"
            ).fetchone()
        if row is None:
            return None
        return Message(row[0], row[1], row[2], bytes(row[3]), bool(row[4]))

    def ack(self, message_id: int) -> None:
        """The broker confirmed delivery (PUBACK): forget the message."""
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE id=?", (message_id,))

    def size(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def counter(self, name: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name=?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def _trim(self) -> None:
        count = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        excess = count - self.max_messages
        if excess <= 0:
            return
        self._db.execute(
            "DELETE FROM outbox WHERE id IN "
            "(SELECT id FROM outbox WHERE kind IN ('event', 'frame') ORDER BY id LIMIT ?)",
            (excess,),
        )
        self._db.execute(
            "INSERT INTO counters(name, value) VALUES('dropped_events', ?) "
            "ON CONFLICT(name) DO UPDATE SET value=value+excluded.value",
            (excess,),
        )
