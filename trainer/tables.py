"""The label store's tables (SQLAlchemy 2): frames, the event log, dataset versions, runs, views.

`events` is append-only: the ORM refuses to flush an update or a delete of a row.
`view_checkpoints` is a cache of the label views (`trainer/snapshot.py`): one row per view,
replaced as the log grows, always rebuildable from `events`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, LargeBinary, String, event
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from linefleet_core.errors import PermanentError
from trainer.events import LIMITS


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
    """UTC, without a zone (both backends store it the same way)."""
    actor: Mapped[str] = mapped_column(String(LIMITS["actor"]))
    frame: Mapped[str | None] = mapped_column(ForeignKey("frames.sha256"), index=True)
    cls: Mapped[str | None] = mapped_column(String(LIMITS["cls"]))
    taxonomy: Mapped[str | None] = mapped_column(String(LIMITS["taxonomy"]))
    target: Mapped[int | None] = mapped_column(ForeignKey("events.id"))
    detail: Mapped[str | None] = mapped_column(String(LIMITS["detail"]))
    model_said: Mapped[str | None] = mapped_column(String(LIMITS["model_said"]))
    model_version: Mapped[str | None] = mapped_column(String(LIMITS["model_version"]))
    source_id: Mapped[str | None] = mapped_column(String(LIMITS["source_id"]), unique=True)


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


class CheckpointRow(Base):
    """A view folded up to `last_event`, under the taxonomies named by `fingerprint`."""

    __tablename__ = "view_checkpoints"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    last_event: Mapped[int]
    body: Mapped[bytes] = mapped_column(LargeBinary)
    saved_at: Mapped[dt.datetime]


@event.listens_for(EventRow, "before_update")
@event.listens_for(EventRow, "before_delete")
def _append_only(mapper: Any, connection: Any, target: EventRow) -> None:
    raise PermanentError(f"label event {target.id} is append-only: it cannot change")
