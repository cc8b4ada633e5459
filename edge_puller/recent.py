"""The device's memory of its recent decisions, so an inspector can correct one of them.

An inspector at the line's HMI says "frame X is actually class Y" (`linefleet edge override`,
`edge_puller/override.py`). That correction needs what the model said on frame X, which model
said it, and the frame's pixels for the trainer, possibly minutes later and from another
process. So the agent keeps the last `capacity` decisions (default 1000) in `recent.db` in the
state directory: SQLite in WAL mode, readable while the agent writes, each row the decision
and the frame as the wire's `LFF1` envelope (JPEG plus metadata, `edge_puller/spool.py`).

The frame loop never waits on this: `record` hands the frame to a writer thread through a
bounded queue (a full queue drops the record and counts it in `dropped`), and the writer
encodes, inserts in batches and deletes rows older than the last `capacity`; a write that
fails (a full disk) is logged and counted, and serving goes on. Durability is
`synchronous=NORMAL`: a power cut may lose the last few records, never corrupt the file. Only
decided frames are kept (an error has nothing to correct).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import queue
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # `linefleet edge override` only reads: it needs neither onnxruntime nor cv2
    from edge_puller.engine import Decision
    from edge_puller.runtime import Frame
    from edge_puller.spool import FrameReason

log = logging.getLogger("linefleet.edge")
FILE = "recent.db"
DEFAULT_CAPACITY = 1000
QUEUE_SIZE = 16
"""Frames waiting for the writer (raw pixels: kept small to bound memory)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    frame_id TEXT NOT NULL,
    line TEXT NOT NULL,
    camera TEXT NOT NULL,
    at TEXT NOT NULL,
    model TEXT NOT NULL,
    predicted TEXT NOT NULL,
    confidence REAL NOT NULL,
    frame BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_by_frame ON decisions(frame_id);
"""


@dataclass(frozen=True)
class Recorded:
    """One recorded decision: who decided what on which frame, and the frame itself."""

    frame_id: str
    line: str
    camera: str
    at: str
    model: str
    predicted: str
    confidence: float
    frame: bytes
    """The `LFF1` frame envelope, ready for `…/frames`."""


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, timeout=10.0)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(SCHEMA)
    return db


def lookup(state_dir: Path, frame_id: str, line: str | None = None) -> Recorded | None:
    """The newest recorded decision on `frame_id` (on `line` if given), read by any process."""
    path = state_dir / FILE
    if not path.exists():
        return None
    db = _connect(path)
    try:
        sql = (
            "SELECT frame_id, line, camera, at, model, predicted, confidence, frame FROM decisions"
        )
        args: tuple[str, ...] = (frame_id,)
        where = " WHERE frame_id = ?" + (" AND line = ?" if line else "")
        if line:
            args = (frame_id, line)
        row = db.execute(sql + where + " ORDER BY n DESC LIMIT 1", args).fetchone()
    finally:
        db.close()
    if row is None:
        return None
    return Recorded(
        frame_id=str(row[0]),
        line=str(row[1]),
        camera=str(row[2]),
        at=str(row[3]),
        model=str(row[4]),
        predicted=str(row[5]),
        confidence=float(row[6]),
        frame=bytes(row[7]),
    )


def _reason(decision: Decision) -> FrameReason:
    if decision.label != "ok":
        return "defect"
    candidate, serving = decision.candidate, decision.serving
    if candidate is not None and serving is not None and candidate.label != serving.label:
        return "disagreement"
    return "sample"


class RecentDecisions:
    """The writer side: `record` from the frame loop, a thread writes; `close` flushes."""

    def __init__(self, state_dir: Path, site: str, device: str, capacity: int) -> None:
        self.path = state_dir / FILE
        self.site = site
        self.device = device
        self.capacity = capacity
        self.dropped = 0
        self._queue: queue.Queue[tuple[Decision, Frame, dt.datetime] | None] = queue.Queue(
            QUEUE_SIZE
        )
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()

    def record(self, decision: Decision, frame: Frame, at: dt.datetime) -> None:
        if self.capacity <= 0 or decision.label is None or decision.serving is None:
            return
        self._ensure_writer()
        try:
            self._queue.put_nowait((decision, frame, at))
        except queue.Full:
            self.dropped += 1

    def flush(self) -> None:
        """Wait until everything recorded so far is in the file."""
        if self._thread is not None:
            self._queue.join()

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(10.0)
            self._thread = None

    def _ensure_writer(self) -> None:
        with self._start:
            if self._thread is None:
                self._thread = threading.Thread(target=self._write, name="recent", daemon=True)
                self._thread.start()

    def _write(self) -> None:
        db = _connect(self.path)
        try:
            while True:
                batch = [self._queue.get()]
                with contextlib.suppress(queue.Empty):
                    while len(batch) < QUEUE_SIZE and batch[-1] is not None:
                        batch.append(self._queue.get_nowait())
                items = [item for item in batch if item is not None]
                try:
                    self._insert(db, items)
                except (sqlite3.Error, OSError, ValueError) as exc:  # full disk: keep serving
                    self.dropped += len(items)
                    log.warning(
                        "%s: could not record %d decision(s): %s", self.path, len(items), exc
                    )
                finally:
                    for _ in batch:
                        self._queue.task_done()
                if len(items) < len(batch):
                    return
        finally:
            db.close()

    def _insert(
        self, db: sqlite3.Connection, items: list[tuple[Decision, Frame, dt.datetime]]
    ) -> None:
        from edge_puller.spool import envelope

        rows = []
        for decision, frame, at in items:
            payload = envelope(decision, frame, self.site, self.device, at, _reason(decision))
            if payload is None or decision.label is None:
                self.dropped += 1
                continue
            model = decision.model or ""
            rows.append(
                (decision.frame_id, decision.line, decision.camera, at.isoformat(), model,
                 decision.label, decision.confidence, payload)
            )  # fmt: skip
        if not rows:
            return
        with db:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT INTO decisions(frame_id, line, camera, at, model, predicted, confidence, "
                "frame) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            db.execute(
                "DELETE FROM decisions WHERE n <= (SELECT MAX(n) FROM decisions) - ?",
                (self.capacity,),
            )
