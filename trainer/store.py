"""The label store: frames' provenance and an append-only log of label events (SQLAlchemy 2).

    store = LabelStore.open("sqlite:///state/labels.db", taxonomies)
    store.register_frame(sha, "toledo", "line-3", "cam-1")
    store.append([NewEvent(EventKind.ANNOTATION, "ana", frame=sha, cls="scratch",
                           taxonomy="surface-defects@2")])

Every batch is checked as a whole before anything is written (unknown class, unknown
taxonomy version, unknown frame, a QA on something that is not an override...): a bad batch
raises `PermanentError` and writes nothing. Rows are never updated or deleted; the ORM
refuses to flush an update or delete of an event. Any SQLAlchemy URL works (SQLite by default,
PostgreSQL in a plant).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import ForeignKey, String, create_engine, event, insert, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from linefleet_core.errors import PermanentError, UsageError
from linefleet_core.taxonomy import Taxonomy
from trainer.checks import check_batch
from trainer.events import Event, EventKind, NewEvent


class Base(DeclarativeBase):
    pass


class FrameRow(Base):
    __tablename__ = "frames"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    site: Mapped[str] = mapped_column(String(63))
    line: Mapped[str] = mapped_column(String(63))
    camera: Mapped[str] = mapped_column(String(63))
    added_at: Mapped[dt.datetime]


class EventRow(Base):
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    at: Mapped[dt.datetime]
    actor: Mapped[str] = mapped_column(String(128))
    frame: Mapped[str | None] = mapped_column(ForeignKey("frames.sha256"), index=True)
    cls: Mapped[str | None] = mapped_column(String(63))
    taxonomy: Mapped[str | None] = mapped_column(String(80))
    target: Mapped[int | None] = mapped_column(ForeignKey("events.id"))
    detail: Mapped[str | None] = mapped_column(String(32))
    model_said: Mapped[str | None] = mapped_column(String(63))
    model_version: Mapped[str | None] = mapped_column(String(80))
    source_id: Mapped[str | None] = mapped_column(String(128), unique=True)


class DatasetRow(Base):
    """A dataset version that was built (its manifest lives in the state folder)."""

    __tablename__ = "dataset_versions"
    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    taxonomy: Mapped[str] = mapped_column(String(80))
    frames: Mapped[int]
    last_event: Mapped[int]
    created_at: Mapped[dt.datetime]


class RunRow(Base):
    """A training run started for a dataset version: at most one per version (the key)."""

    __tablename__ = "training_runs"
    dataset: Mapped[str] = mapped_column(ForeignKey("dataset_versions.hash"), primary_key=True)
    started_at: Mapped[dt.datetime]
    reason: Mapped[str] = mapped_column(String(200))


@event.listens_for(EventRow, "before_update")
@event.listens_for(EventRow, "before_delete")
def _append_only(mapper: Any, connection: Any, target: EventRow) -> None:
    raise PermanentError(f"label event {target.id} is append-only: it cannot change")


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
        with self._session() as s:
            if s.get(FrameRow, sha) is not None:
                return False
            s.add(FrameRow(sha256=sha, site=site, line=line, camera=camera, added_at=_now()))
            s.commit()
            return True

    def frames(self, only: Iterable[str] | None = None) -> dict[str, FrameInfo]:
        """Known frames (all of them, or those of `only` that are known)."""
        t = FrameRow.__table__
        query = select(t.c.sha256, t.c.site, t.c.line, t.c.camera)
        wanted = None if only is None else sorted(set(only))
        out: dict[str, FrameInfo] = {}
        with self._engine.connect() as conn:
            for chunk in _chunks(wanted):
                q = query if chunk is None else query.where(t.c.sha256.in_(chunk))
                out.update({r[0]: FrameInfo(*r) for r in conn.execute(q)})
        return out

    # -- events -----------------------------------------------------------------------------

    def append(self, batch: Sequence[NewEvent], new_frames: Sequence[FrameInfo] = ()) -> list[int]:
        """Check the whole batch, then write it (and `new_frames`) in one transaction.

        Returns the new event ids. Overrides whose `source_id` is already stored are skipped
        (ingesting the same edge events twice is a no-op); frames already known keep their
        first provenance. Only batches that act on earlier events (QA, review, migration)
        replay the log to check them; annotations and overrides are checked by lookups.
        """
        known_sources = self._known_sources([e.source_id for e in batch if e.source_id])
        fresh = []
        for new in batch:
            if new.source_id is None or new.source_id not in known_sources:
                fresh.append(new)
                if new.source_id is not None:
                    known_sources.add(new.source_id)
        referenced = {e.frame for e in fresh if e.frame} | {f.sha256 for f in new_frames}
        known = self.frames(referenced)
        frames: dict[str, FrameInfo] = {f.sha256: f for f in new_frames}
        frames.update(known)
        acts_on_log = any(e.kind in _ACTS_ON_LOG for e in fresh)
        check_batch(fresh, self.events() if acts_on_log else [], frames, self.taxonomies)
        added = [f for sha, f in frames.items() if sha not in known]
        rows = [
            {
                "kind": new.kind.value,
                "at": new.at or _now(),
                "actor": new.actor,
                "frame": new.frame,
                "cls": new.cls,
                "taxonomy": new.taxonomy,
                "target": new.target,
                "detail": new.detail,
                "model_said": new.model_said,
                "model_version": new.model_version,
                "source_id": new.source_id,
            }
            for new in fresh
        ]
        with self._engine.begin() as conn:
            if added:
                now = _now()
                conn.execute(insert(FrameRow), [{**f.__dict__, "added_at": now} for f in added])
            if not rows:
                return []
            query = insert(EventRow).returning(EventRow.id, sort_by_parameter_order=True)
            return [int(r[0]) for r in conn.execute(query, rows)]

    def _known_sources(self, sources: list[str]) -> set[str]:
        t = EventRow.__table__
        out: set[str] = set()
        with self._engine.connect() as conn:
            for chunk in _chunks(sorted(set(sources))):
                if chunk:
                    q = select(t.c.source_id).where(t.c.source_id.in_(chunk))
                    out.update(r[0] for r in conn.execute(q))
        return out

    def events(self, after: int = 0) -> list[Event]:
        """Every event with id > `after`, oldest first."""
        e, f = EventRow.__table__, FrameRow.__table__
        query = (
            select(
                e.c.id,
                e.c.kind,
                e.c.at,
                e.c.actor,
                e.c.frame,
                f.c.site,
                f.c.line,
                f.c.camera,
                e.c.cls,
                e.c.taxonomy,
                e.c.target,
                e.c.detail,
                e.c.model_said,
                e.c.model_version,
                e.c.source_id,
            )
            .select_from(e.outerjoin(f, e.c.frame == f.c.sha256))
            .where(e.c.id > after)
            .order_by(e.c.id)
        )
        with self._engine.connect() as conn:
            return [Event(r[0], EventKind(r[1]), *r[2:]) for r in conn.execute(query)]

    # -- dataset versions and runs ----------------------------------------------------------

    def record_dataset(self, digest: str, taxonomy: str, frames: int, last_event: int) -> bool:
        with self._session() as s:
            if s.get(DatasetRow, digest) is not None:
                return False
            s.add(
                DatasetRow(
                    hash=digest,
                    taxonomy=taxonomy,
                    frames=frames,
                    last_event=last_event,
                    created_at=_now(),
                )
            )
            s.commit()
            return True

    def claim_run(self, digest: str, reason: str) -> bool:
        """Claim the one training run of a dataset version; False if it was claimed before."""
        with self._session() as s:
            if s.get(RunRow, digest) is not None:
                return False
            s.add(RunRow(dataset=digest, started_at=_now(), reason=reason[:200]))
            try:
                s.commit()
            except SQLAlchemyError:
                return False  # another process claimed it between our read and our write
            return True

    def has_run(self, digest: str) -> bool:
        with self._session() as s:
            return s.get(RunRow, digest) is not None

    def last_trained_event(self) -> int:
        """The newest event a trained dataset version covered (0 before the first run)."""
        with self._session() as s:
            query = select(DatasetRow.last_event).join(RunRow, RunRow.dataset == DatasetRow.hash)
            values = s.scalars(query).all()
            return max(values, default=0)

    def _session(self) -> Session:
        return Session(self._engine, expire_on_commit=False)


_ACTS_ON_LOG = (EventKind.QA, EventKind.REVIEW, EventKind.MIGRATION)


def _chunks(items: list[str] | None, size: int = 500) -> list[list[str] | None]:
    """`None` (no filter) as one chunk, else `items` in slices SQLite's IN () accepts."""
    if items is None:
        return [None]
    return [items[i : i + size] for i in range(0, len(items), size)]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    return text[:200]
