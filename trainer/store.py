"""The label store: frames' provenance and an append-only log of label events (SQLAlchemy 2).

    store = LabelStore.open("sqlite:///state/labels.db", taxonomies)
    store.register_frame(sha, "toledo", "line-3", "cam-1")
    store.append([NewEvent(EventKind.ANNOTATION, "ana", frame=sha, cls="scratch",
                           taxonomy="surface-defects@2")])

    state = store.state()       # current labels and tasks (trainer/views.py)

Every batch is checked as a whole before anything is written (unknown class, unknown
taxonomy version, unknown frame, a QA on something that is not an override...): a bad batch
raises `PermanentError` and writes nothing. Rows are never updated or deleted; the ORM
refuses to flush an update or delete of an event. Any SQLAlchemy URL works (SQLite by default,
PostgreSQL in a plant: `postgresql+psycopg://user@host/db`).

Writers take the store's write lock (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: a lock on the
events table) before they read what they check against, so two writers never both decide the
same override, and event ids become visible in order: whoever has seen event N has seen every
event before it. That is what lets `state()` fold only the events after its checkpoint.
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from linefleet_core.errors import UsageError
from linefleet_core.taxonomy import Taxonomy
from trainer import snapshot
from trainer.checks import check_batch
from trainer.events import Event, EventKind, NewEvent
from trainer.tables import Base, CheckpointRow, DatasetRow, EventRow, FrameRow, RunRow
from trainer.views import LabelState, fold

__all__ = ["DatasetRow", "EventRow", "FrameInfo", "FrameRow", "LabelStore", "RunRow"]

CHECKPOINT_EVERY = 1000
"""Save the views' checkpoint once this many events were folded since the last one."""
VIEW = "labels"


@dataclass(frozen=True)
class FrameInfo:
    sha256: str
    site: str
    line: str
    camera: str


def default_url(state: Path) -> str:
    return f"sqlite:///{(state / 'labels.db').resolve()}"


class LabelStore:
    def __init__(self, engine: Any, taxonomies: Mapping[str, Taxonomy]) -> None:
        self._engine = engine
        self.taxonomies = dict(taxonomies)
        self._fingerprint = snapshot.fingerprint(self.taxonomies)
        self._view: LabelState | None = None
        self._checkpointed = 0

    @classmethod
    def open(cls, url: str, taxonomies: Mapping[str, Taxonomy]) -> LabelStore:
        """Open (and create the tables of) the store at `url`; a clear error if it cannot."""
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            engine = create_engine(url)
            Base.metadata.create_all(engine)
        except (SQLAlchemyError, ImportError) as exc:
            raise UsageError(f"label store {url}: cannot open ({_reason(exc)})") from None
        return cls(engine, taxonomies)

    def close(self) -> None:
        self._engine.dispose()

    # -- frames -----------------------------------------------------------------------------

    def register_frame(self, sha: str, site: str, line: str, camera: str) -> bool:
        """Record where a frame came from; False if it was known already (first one wins)."""
        with self._write() as conn:
            if self._frames(conn, [sha]):
                return False
            row = {"sha256": sha, "site": site, "line": line, "camera": camera}
            conn.execute(insert(FrameRow), [{**row, "added_at": _now()}])
            return True

    def frames(self, only: Iterable[str] | None = None) -> dict[str, FrameInfo]:
        """Known frames (all of them, or those of `only` that are known)."""
        with self._engine.connect() as conn:
            return self._frames(conn, None if only is None else sorted(set(only)))

    def _frames(self, conn: Connection, wanted: list[str] | None) -> dict[str, FrameInfo]:
        t = FrameRow.__table__
        query = select(t.c.sha256, t.c.site, t.c.line, t.c.camera)
        out: dict[str, FrameInfo] = {}
        for chunk in _chunks(wanted):
            q = query if chunk is None else query.where(t.c.sha256.in_(chunk))
            out.update({r[0]: FrameInfo(*r) for r in conn.execute(q)})
        return out

    # -- events -----------------------------------------------------------------------------

    def append(
        self,
        batch: Sequence[NewEvent],
        new_frames: Sequence[FrameInfo] = (),
        *,
        repeats: bool = True,
    ) -> list[int]:
        """Check the whole batch, then write it (and `new_frames`) in one transaction.

        Returns the new event ids. Overrides whose `source_id` is already stored are skipped
        (ingesting the same edge events twice is a no-op); frames already known keep their
        first provenance. With `repeats=False` an annotation that says what its annotator's
        latest annotation of that frame says (class and taxonomy version) is skipped too
        (importing the same file twice is a no-op), decided under the write lock. Only
        batches that act on earlier events (QA, review, migration) need the current views to
        be checked; annotations and overrides are checked by lookups.
        """
        with self._write() as conn:
            known_sources = self._known_sources(conn, [e.source_id for e in batch if e.source_id])
            said = {} if repeats else self._latest_annotations(conn, batch)
            fresh = []
            for new in batch:
                if new.kind is EventKind.ANNOTATION and not repeats:
                    key = (new.frame or "", new.actor)
                    if said.get(key) == (new.cls, new.taxonomy):
                        continue
                    said[key] = (new.cls, new.taxonomy)
                if new.source_id is None or new.source_id not in known_sources:
                    fresh.append(new)
                    if new.source_id is not None:
                        known_sources.add(new.source_id)
            referenced = {e.frame for e in fresh if e.frame} | {f.sha256 for f in new_frames}
            known = self._frames(conn, sorted(referenced))
            frames: dict[str, FrameInfo] = {f.sha256: f for f in new_frames}
            frames.update(known)
            acts_on_log = any(e.kind in _ACTS_ON_LOG for e in fresh)
            state = self._current(conn) if acts_on_log else LabelState()
            check_batch(fresh, state, frames, self.taxonomies)
            added = [f for sha, f in frames.items() if sha not in known]
            if added:
                now = _now()
                conn.execute(insert(FrameRow), [{**f.__dict__, "added_at": now} for f in added])
            if not fresh:
                return []
            rows = [{**_row(new), "at": _utc(new.at)} for new in fresh]
            query = insert(EventRow).returning(EventRow.id, sort_by_parameter_order=True)
            return [int(r[0]) for r in conn.execute(query, rows)]

    def events(self, after: int = 0) -> list[Event]:
        """Every event with id > `after`, oldest first."""
        with self._engine.connect() as conn:
            return _read_events(conn, after)

    # -- views ------------------------------------------------------------------------------

    def state(self) -> LabelState:
        """Current labels and tasks: the last checkpoint with the events since folded in.

        Equal to `replay(store.events(), store.taxonomies)`, without reading the whole log: this
        object keeps its state between calls, a new one starts from the checkpoint saved in the
        database (every CHECKPOINT_EVERY events), or from the log if there is none that fits
        these taxonomies. Returns a copy the caller may keep or change.
        """
        with self._engine.connect() as conn:
            view = self._current(conn)
        if view.last_event - self._checkpointed >= CHECKPOINT_EVERY:
            self._save_checkpoint(view)
        return view.copy()

    def _current(self, conn: Connection) -> LabelState:
        if self._view is None:
            self._view, self._checkpointed = self._load_checkpoint(conn)
        return fold(self._view, _read_events(conn, self._view.last_event), self.taxonomies)

    def _load_checkpoint(self, conn: Connection) -> tuple[LabelState, int]:
        t = CheckpointRow.__table__
        query = select(t.c.fingerprint, t.c.body).where(t.c.name == VIEW)
        row = conn.execute(query).first()
        if row is None or row[0] != self._fingerprint:
            return LabelState(), 0
        try:
            view = snapshot.decode(row[1])
        except (ValueError, KeyError, TypeError, zlib.error):
            return LabelState(), 0  # unreadable: the log has it all
        return view, view.last_event

    def _save_checkpoint(self, view: LabelState) -> None:
        t = CheckpointRow.__table__
        values = {
            "fingerprint": self._fingerprint,
            "last_event": view.last_event,
            "body": snapshot.encode(view),
            "saved_at": _now(),
        }
        try:
            with self._engine.begin() as conn:
                query = select(t.c.fingerprint, t.c.last_event).where(t.c.name == VIEW)
                row = conn.execute(query).first()
                if row is None:
                    conn.execute(insert(CheckpointRow).values(name=VIEW, **values))
                elif row[0] != self._fingerprint or row[1] < view.last_event:
                    newer = update(CheckpointRow).where(CheckpointRow.name == VIEW)
                    conn.execute(newer.values(**values))
        except IntegrityError:
            pass  # another process saved its checkpoint at the same moment: either will do
        self._checkpointed = view.last_event

    def _latest_annotations(
        self, conn: Connection, batch: Sequence[NewEvent]
    ) -> dict[tuple[str, str], tuple[str | None, str | None]]:
        """(frame, annotator) -> (class, taxonomy) of the newest stored annotation, for the
        frames the batch annotates."""
        t = EventRow.__table__
        wanted = sorted({e.frame for e in batch if e.kind is EventKind.ANNOTATION and e.frame})
        out: dict[tuple[str, str], tuple[str | None, str | None]] = {}
        for chunk in _chunks(wanted) if wanted else []:
            query = (
                select(t.c.frame, t.c.actor, t.c.cls, t.c.taxonomy)
                .where(t.c.kind == EventKind.ANNOTATION.value, t.c.frame.in_(chunk or []))
                .order_by(t.c.id)
            )
            out.update(((r[0], r[1]), (r[2], r[3])) for r in conn.execute(query))
        return out

    def _known_sources(self, conn: Connection, sources: list[str]) -> set[str]:
        t = EventRow.__table__
        out: set[str] = set()
        for chunk in _chunks(sorted(set(sources))):
            if chunk:
                out.update(
                    r[0]
                    for r in conn.execute(select(t.c.source_id).where(t.c.source_id.in_(chunk)))
                )
        return out

    # -- dataset versions and runs ----------------------------------------------------------

    def record_dataset(self, digest: str, taxonomy: str, frames: int, last_event: int) -> bool:
        row = DatasetRow(
            hash=digest, taxonomy=taxonomy, frames=frames, last_event=last_event, created_at=_now()
        )
        return self._add_once(DatasetRow, digest, row)

    def claim_run(self, digest: str, reason: str) -> bool:
        """Claim the one training run of a dataset version; False if it was claimed before."""
        return self._add_once(
            RunRow, digest, RunRow(dataset=digest, started_at=_now(), reason=reason[:200])
        )

    def has_run(self, digest: str) -> bool:
        with self._session() as s:
            return s.get(RunRow, digest) is not None

    def last_trained_event(self) -> int:
        """The newest event a trained dataset version covered (0 before the first run)."""
        with self._session() as s:
            query = select(DatasetRow.last_event).join(RunRow, RunRow.dataset == DatasetRow.hash)
            values = s.scalars(query).all()
            return max(values, default=0)

    def _add_once(self, table: type[Base], key: str, row: Base) -> bool:
        with self._session() as s:
            if s.get(table, key) is not None:
                return False
            s.add(row)
            try:
                s.commit()
            except IntegrityError:
                return False  # another process added it between our read and our write
            return True

    def _session(self) -> Session:
        return Session(self._engine, expire_on_commit=False)

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction holding the store's write lock from its first read on."""
        with self._engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            elif conn.dialect.name == "postgresql":
                conn.exec_driver_sql("LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE")
            yield conn


_ACTS_ON_LOG = (EventKind.QA, EventKind.REVIEW, EventKind.MIGRATION)


def _chunks(items: list[str] | None, size: int = 500) -> list[list[str] | None]:
    """`None` (no filter) as one chunk, else `items` in slices SQLite's IN () accepts."""
    if items is None:
        return [None]
    return [items[i : i + size] for i in range(0, len(items), size)]


def _read_events(conn: Connection, after: int) -> list[Event]:
    e, f = EventRow.__table__, FrameRow.__table__
    columns = [e.c.id, e.c.kind, e.c.at, e.c.actor, e.c.frame, f.c.site, f.c.line, f.c.camera]
    columns += [e.c.cls, e.c.taxonomy, e.c.target, e.c.detail, e.c.model_said]
    columns += [e.c.model_version, e.c.source_id]
    query = (
        select(*columns)
        .select_from(e.outerjoin(f, e.c.frame == f.c.sha256))
        .where(e.c.id > after)
        .order_by(e.c.id)
    )
    return [Event(r[0], EventKind(r[1]), *r[2:]) for r in conn.execute(query)]


def _row(new: NewEvent) -> dict[str, Any]:
    fields = ("actor", "frame", "cls", "taxonomy", "target", "detail", "model_said")
    out: dict[str, Any] = {name: getattr(new, name) for name in fields}
    out.update(kind=new.kind.value, model_version=new.model_version, source_id=new.source_id)
    return out


def _utc(moment: dt.datetime | None) -> dt.datetime:
    """`moment` (now if None) as UTC without a zone, the same on every backend."""
    if moment is None:
        return _now()
    if moment.tzinfo is not None:
        return moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    return text[:200]
