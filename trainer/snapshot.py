"""A `LabelState` as bytes, for the label store's checkpoint of its views (pure).

    blob = encode(state); decode(blob) == state     # same contents, same dict orders

The checkpoint is a cache: the event log stays the source of truth, and a checkpoint that
does not match (another format, other taxonomy files) is ignored and rebuilt from the log.
`fingerprint(taxonomies)` names what a state depends on besides the log: the taxonomies (a
re-review's choices) and the audit rule's size. Dict orders are kept, because dataset
building and migration planning walk the labels in the order the fold made them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import zlib
from collections.abc import Mapping
from typing import Any

from linefleet_core.taxonomy import Taxonomy
from trainer import views
from trainer.events import Decision, Event, EventKind
from trainer.views import Label, LabelState

FORMAT = 2


def fingerprint(taxonomies: Mapping[str, Taxonomy]) -> str:
    docs = {ref: taxonomies[ref].model_dump(mode="json") for ref in sorted(taxonomies)}
    doc = {"format": FORMAT, "audit_first": views.AUDIT_FIRST, "taxonomies": docs}
    text = json.dumps(doc, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def encode(state: LabelState) -> bytes:
    doc = {
        "labels": [_label(v) for v in state.labels.values()],
        "rejected": [_label(v) for v in state.rejected.values()],
        "overrides": [_event(v) for v in state.overrides.values()],
        "decided": [[k, v.value] for k, v in state.decided.items()],
        "migrations": [
            [k, label, list(choices)] for k, (label, choices) in state.migrations.items()
        ],
        "audit_queue": state.audit_queue,
        "annotated": list(state.annotated.items()),
        "samples": [_event(v) for v in state.samples.values()],
        "last_event": state.last_event,
    }
    return zlib.compress(json.dumps(doc, separators=(",", ":")).encode(), 1)


def decode(blob: bytes) -> LabelState:
    doc = json.loads(zlib.decompress(blob))
    labels = [_to_label(row) for row in doc["labels"]]
    rejected = [_to_label(row) for row in doc["rejected"]]
    overrides = [_to_event(row) for row in doc["overrides"]]
    samples = [_to_event(row) for row in doc["samples"]]
    return LabelState(
        labels={lab.id: lab for lab in labels},
        rejected={lab.id: lab for lab in rejected},
        overrides={ev.id: ev for ev in overrides},
        decided={k: Decision(v) for k, v in doc["decided"]},
        migrations={k: (label, tuple(choices)) for k, label, choices in doc["migrations"]},
        audit_queue=list(doc["audit_queue"]),
        annotated=dict(doc["annotated"]),
        samples={ev.id: ev for ev in samples},
        last_event=doc["last_event"],
    )


def _label(lab: Label) -> list[Any]:
    return [
        lab.id,
        lab.frame,
        lab.site,
        lab.line,
        lab.camera,
        lab.cls,
        lab.taxonomy,
        lab.made_under,
        lab.origin.value,
        lab.author,
        lab.pending,
        None if lab.audit is None else lab.audit.value,
    ]


def _to_label(row: list[Any]) -> Label:
    ident, frame, site, line, camera, cls, taxonomy, made_under, origin, author, pending, audit = (
        row
    )
    return Label(
        ident,
        frame,
        site,
        line,
        camera,
        cls,
        taxonomy,
        made_under,
        EventKind(origin),
        author,
        pending,
        None if audit is None else Decision(audit),
    )


def _event(ev: Event) -> list[Any]:
    return [
        ev.id,
        ev.kind.value,
        ev.at.isoformat(),
        ev.actor,
        ev.frame,
        ev.site,
        ev.line,
        ev.camera,
        ev.cls,
        ev.taxonomy,
        ev.target,
        ev.detail,
        ev.model_said,
        ev.model_version,
        ev.source_id,
    ]


def _to_event(row: list[Any]) -> Event:
    ident, kind, at, *tail = row
    return Event(ident, EventKind(kind), dt.datetime.fromisoformat(at), *tail)
