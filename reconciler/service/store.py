"""The reconciler's state directory: one SQLite database (WAL), written in small transactions.

It keeps what devices told us (latest reported state, online flag, last-seen time, the last
event `seq` and recent events), the rejection counters, and the reconcile bookkeeping
(`last_applied_commit`, `last_attempted_commit`, ...), so a restart loses nothing.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections import Counter
from pathlib import Path

from pydantic import ValidationError
from pydantic_core import to_json

from linefleet_core.wire import Event, ReportedState
from reconciler.service.observed import DeviceObservation, Observations, Rejected, Rejection

DB_NAME = "reconciler.sqlite3"
SCHEMA = """
CREATE TABLE IF NOT EXISTS device (
    key TEXT PRIMARY KEY, site TEXT NOT NULL, device TEXT NOT NULL,
    reported TEXT, last_seen REAL, online INTEGER, last_seq INTEGER NOT NULL DEFAULT 0,
    events TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS rejection (
    reason TEXT PRIMARY KEY, count INTEGER NOT NULL, last TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
log = logging.getLogger(__name__)
# Columns added later (a state directory from an older version gains them on open):
COLUMNS = {
    "install": "TEXT NOT NULL DEFAULT ''",
    "seqs": "TEXT NOT NULL DEFAULT '{}'",
    "refused": "TEXT",  # the device's last refused message (JSON), or NULL
}


class Store:
    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / DB_NAME
        # One owner at a time (the reconcile loop, possibly on a worker thread): no sharing.
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        have = {row[1] for row in self.db.execute("PRAGMA table_info(device)")}
        for name, kind in COLUMNS.items():
            if name not in have:
                self.db.execute(f"ALTER TABLE device ADD COLUMN {name} {kind}")

    def close(self) -> None:
        self.db.close()

    def load(self) -> Observations:
        obs = Observations()
        rows = self.db.execute(
            "SELECT site, device, reported, last_seen, online, last_seq, events, install, seqs, "
            "refused FROM device"
        )
        for row in rows:
            site, device, reported, last_seen, online, last_seq, events, install, seqs, no = row
            item = obs.device(site, device)
            item.reported = None if reported is None else _reported(site, device, reported)
            item.last_seen = last_seen
            item.online = None if online is None else bool(online)
            item.last_seq = last_seq
            item.install = install
            item.seqs = {str(k): int(v) for k, v in json.loads(seqs).items()}
            item.events = [Event.model_validate(e) for e in json.loads(events)]
            item.refused, item.refused_at = _refusal(no)
        for reason, count, last in self.db.execute("SELECT reason, count, last FROM rejection"):
            obs.rejections[reason] = count
            obs.last_rejection[reason] = last
        return obs

    def save(self, obs: Observations, dirty: set[str], rejections: Counter[str]) -> None:
        """Write the devices in `dirty` and add `rejections` to the counters, atomically."""
        if not dirty and not rejections:
            return
        with self.db:  # one transaction
            self.db.execute("BEGIN")
            for key in sorted(dirty):
                item = obs.devices[key]
                self.db.execute(
                    "INSERT OR REPLACE INTO device (key, site, device, reported, last_seen, "
                    "online, last_seq, events, install, seqs, refused) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        key,
                        item.site,
                        item.device,
                        None if item.reported is None else _stored(item.reported),
                        item.last_seen,
                        None if item.online is None else int(item.online),
                        item.last_seq,
                        json.dumps([e.model_dump(mode="json") for e in item.events]),
                        item.install,
                        json.dumps(item.seqs),
                        None if item.refused is None else _refused(item),
                    ),
                )
            for reason, count in rejections.items():
                last = obs.last_rejection.get(reason, "")
                self.db.execute(
                    "INSERT INTO rejection VALUES (?, ?, ?) ON CONFLICT(reason) DO UPDATE "
                    "SET count = count + excluded.count, last = excluded.last",
                    (reason, count, last),
                )

    def get(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def meta(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    def put(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))


def _refused(item: DeviceObservation) -> str:
    got = item.refused
    assert got is not None
    return json.dumps(
        {
            "topic": got.topic,
            "reason": got.reason.value,
            "detail": got.detail,
            "at": item.refused_at,
        }
    )


def _refusal(text: str | None) -> tuple[Rejected | None, float | None]:
    """A stored refusal, or none for one that does not read back (a reason of a later
    version): it is a note, and the counters keep the count."""
    if text is None:
        return None, None
    try:
        raw = json.loads(text)
        at = raw.get("at")
        got = Rejected(str(raw["topic"]), Rejection(raw["reason"]), str(raw["detail"]))
        return got, None if at is None else float(at)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None, None


def _stored(report: ReportedState) -> str:
    """The report as JSON that `_reported` reads back. A device may report an infinite metric
    (`1e999` is a JSON number that parses as infinity, and the protocol accepts it), which
    `model_dump_json` writes as `null`, a value no float field takes back: the next
    `reconcile` and every `status --state-dir` stopped (exit 3) reading it. It is written
    `Infinity` instead, which pydantic reads (NaN cannot arrive: receivers refuse the literal)."""
    return to_json(report.model_dump(), inf_nan_mode="constants").decode()


def _reported(site: str, device: str, text: str) -> ReportedState | None:
    """A stored report, or None (and a warning) for one that does not read back, such as the
    `null` metric an older reconciler wrote: the device's next report replaces it."""
    try:
        return ReportedState.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        log.warning(
            "state directory: the stored report of %s/%s does not read back (%s: %s); "
            "dropped until the device reports again",
            site,
            device,
            where,
            first["msg"],
        )
        return None
