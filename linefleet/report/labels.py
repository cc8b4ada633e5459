"""Label queue sizes from the trainer's label store (read-only: nothing is written).

Open tasks come from `trainer.views.replay` (the same fold `linefleet labels tasks` uses);
"confirmed since the last dataset version" counts QA confirmations of overrides newer than the
newest event a recorded dataset version covered. The field escape estimates (`trainer.audits`)
come from the same fold; `linefleet status --labels` reads them here too.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from linefleet.report.data import LabelQueues
from linefleet_core.errors import UsageError
from linefleet_core.taxonomy import Taxonomy

if TYPE_CHECKING:
    from trainer.audits import FieldEscapes


def store_url(value: str) -> str:
    """A SQLAlchemy URL as given, or a path to a SQLite file (which must exist)."""
    if "://" in value:
        path = value.removeprefix("sqlite:///") if value.startswith("sqlite:///") else None
    else:
        path, value = value, f"sqlite:///{Path(value).resolve()}"
    if path is not None and not Path(path).is_file():
        raise UsageError(f"--labels {path}: no such label store")
    return value


def read_queues(url: str, taxonomies: Mapping[str, Taxonomy]) -> LabelQueues:
    from sqlalchemy import create_engine, func, select

    from trainer.events import Decision, EventKind
    from trainer.store import DatasetRow, LabelStore
    from trainer.views import TaskKind, replay

    store = LabelStore.open(url, taxonomies)
    try:
        events = store.events()
    finally:
        store.close()
    engine = create_engine(url)
    try:
        with engine.connect() as db:  # the newest dataset version (a read-only query)
            row = db.execute(
                select(func.max(DatasetRow.last_event), func.max(DatasetRow.created_at))
            ).one()
    finally:
        engine.dispose()
    last_event, last_at = int(row[0] or 0), row[1]
    tasks = replay(events, taxonomies).tasks()
    kinds = [t.kind for t in tasks]
    overrides = {e.id for e in events if e.kind is EventKind.OVERRIDE}
    confirmed = sum(
        1
        for e in events
        if e.kind is EventKind.QA
        and e.detail == Decision.CONFIRM.value
        and e.target in overrides
        and e.id > last_event
    )
    return LabelQueues(
        reviews=kinds.count(TaskKind.REVIEW),
        qa=kinds.count(TaskKind.OVERRIDE),
        audits=kinds.count(TaskKind.AUDIT),
        confirmed_since_dataset=confirmed,
        last_dataset_at=None if last_at is None else _utc(last_at),
    )


def _utc(moment: object) -> float:
    import datetime as dt

    assert isinstance(moment, dt.datetime)
    return moment.replace(tzinfo=dt.UTC).timestamp()


def read_field_escapes(url: str, taxonomies: Mapping[str, Taxonomy]) -> dict[str, FieldEscapes]:
    """Per line, the field escape rate estimated from labelled audit samples (read-only)."""
    from trainer.audits import field_escapes
    from trainer.store import LabelStore
    from trainer.views import replay

    store = LabelStore.open(url, taxonomies)
    try:
        events = store.events()
    finally:
        store.close()
    return field_escapes(replay(events, taxonomies))
