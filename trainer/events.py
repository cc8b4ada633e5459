"""The label events: the only thing the label store ever writes (append-only, never updated).

    annotation  an annotator says frame F shows class C (under taxonomy version T)
    override    an inspector on the line overrode the model: it said X, the inspector says C
    qa          a reviewer confirms or rejects an override (or audits an annotation)
    migration   a label moves to the next taxonomy version: automatically (same, renamed,
                merged: `cls` set) or pending a human decision (split, deprecated: `cls` empty)
    review      a human resolves a pending migration by choosing the class
    sample      the edge sent frame F as an audit sample of frames its model called `ok`
                confidently (`detail`: the frame's reason, `audit` or `sample`); labelling the
                frame estimates the line's field escape rate (`trainer/audits.py`)

`target` links an event to the one it acts on: qa -> override/annotation, migration -> the
label's first event (annotation or override), review -> migration.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

LIMITS = {
    "actor": 128,
    "frame": 64,
    "cls": 63,
    "taxonomy": 80,
    "detail": 32,
    "model_said": 63,
    "model_version": 80,
    "source_id": 128,
}
"""The longest value each text field of an event may hold (the store's column widths)."""


class EventKind(enum.StrEnum):
    ANNOTATION = "annotation"
    OVERRIDE = "override"
    QA = "qa"
    MIGRATION = "migration"
    REVIEW = "review"
    SAMPLE = "sample"


class Decision(enum.StrEnum):
    CONFIRM = "confirm"
    REJECT = "reject"


@dataclass(frozen=True)
class NewEvent:
    """An event before it is stored (no id yet)."""

    kind: EventKind
    actor: str
    frame: str | None = None
    cls: str | None = None
    taxonomy: str | None = None
    target: int | None = None
    detail: str | None = None
    """qa: confirm/reject; migration: the mapping kind (same, renamed, merged, split, ...);
    sample: the frame's reason on the wire."""
    model_said: str | None = None
    model_version: str | None = None
    source_id: str | None = None
    """For overrides: the edge's event id, for samples `sample:<frame>`, so ingesting the same
    events or frames twice is a no-op."""
    at: dt.datetime | None = None


@dataclass(frozen=True)
class Event:
    """A stored event; `site/line/camera` come from the frame's provenance."""

    id: int
    kind: EventKind
    at: dt.datetime
    actor: str
    frame: str | None
    site: str | None
    line: str | None
    camera: str | None
    cls: str | None
    taxonomy: str | None
    target: int | None
    detail: str | None
    model_said: str | None
    model_version: str | None
    source_id: str | None

    @property
    def line_key(self) -> str:
        return f"{self.site}/{self.line}"
