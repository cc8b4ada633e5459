"""Inspector overrides from the edge -> the human-in-the-loop QA queue.

An inspector who disagrees with the model on a frame makes the edge send an event
(`docs/protocol.md` section 7) of type `inspection-override`:

    {"protocol": 1, "kind": "Event", "site": "toledo", "device": "tol-edge-01", "seq": 7,
     "at": "...", "type": "inspection-override", "line": "toledo/line-1",
     "details": {"frame_sha256": "<sha256 of the JPEG sent on .../frames>", "camera": "cam-1",
                 "model": "surface-classifier@2", "predicted": "ok", "inspector": "insp-7",
                 "label": "scratch", "taxonomy": "surface-defects@2"}}

The frame itself arrives on `.../frames` (an `LFF1` envelope, checked by
`linefleet_core.wire.decode_frame`). Events are deduplicated by `device:seq`. An override
whose frame has not arrived yet is reported as waiting and not written; ingesting again
later picks it up. Other event types are counted and ignored.

A frame the edge sent as an audit sample (reason `audit` or `sample`: its model called it `ok`
with confidence) also becomes a `sample` event, so it waits in `labels tasks --kind sample`
for a label; the labels estimate the line's field escape rate (`trainer/audits.py`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from linefleet_core import wire
from linefleet_core.refs import Id, VersionedRef
from linefleet_core.text import NOT_UNICODE, lone_surrogate
from trainer.audits import sample_event
from trainer.checks import check_class
from trainer.events import EventKind, NewEvent
from trainer.frames import FrameStore, UnreadableFrame
from trainer.store import FrameInfo, LabelStore

if TYPE_CHECKING:
    from trainer.places import Places

OVERRIDE_TYPE = wire.EventType.INSPECTION_OVERRIDE.value


class OverrideDetails(BaseModel):
    model_config = ConfigDict(extra="ignore")

    frame_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    camera: Id
    model: VersionedRef
    predicted: str
    inspector: str = Field(min_length=1, max_length=128)
    label: Id
    taxonomy: VersionedRef


@dataclass
class IngestReport:
    queued: int = 0
    duplicates: int = 0
    frames: int = 0
    samples: int = 0
    """Audit samples queued for a label (new ones; a sample ingested twice counts once)."""
    waiting_for_frame: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    ignored: Counter[str] = field(default_factory=Counter)


def ingest(
    store: LabelStore,
    frames: FrameStore,
    events: Iterable[bytes],
    frame_payloads: Iterable[bytes] = (),
    *,
    event_names: Sequence[str] = (),
    frame_names: Sequence[str] = (),
    places: Places | None = None,
) -> IngestReport:
    """Store the frames, then queue every valid override whose frame is known; one transaction.

    `event_names` and `frame_names` say where each payload came from (`FILE:LINE`, a frame's
    file), in order, so a refused one is named; without them, `event N` / `frames payload N`.
    With `places` (the fleet), a frame from a device that does not serve the line and camera it
    names is refused: it would count in that line's audit sample and escape estimate."""
    report = IngestReport()
    infos: dict[str, FrameInfo] = {}
    samples: list[NewEvent] = []
    for n, payload in enumerate(frame_payloads):
        where = frame_names[n] if n < len(frame_names) else f"frames payload {n + 1}"
        try:
            meta, jpeg = wire.decode_frame(payload)
            if places is not None and (why := places.serves(meta.device, meta.line, meta.camera)):
                report.invalid.append(f"{where}: {why}")
                continue
            sha = frames.put(jpeg, f"frame {meta.device}/{meta.frame_id}")
        except (wire.FrameError, UnreadableFrame, ValueError) as exc:
            report.invalid.append(f"{where}: {exc}")
            continue
        site, _, line = meta.line.partition("/")
        infos[sha] = FrameInfo(sha, site, line, meta.camera)
        if (sample := sample_event(meta, sha)) is not None:
            samples.append(sample)
    report.frames = len(infos)
    parsed = [
        new
        for n, raw in enumerate(events)
        if (new := _override(raw, store, report, _name(event_names, n, "event"))) is not None
    ]
    known = {**store.frames(e.frame for e in parsed if e.frame), **infos}
    batch: list[NewEvent] = []
    for new in parsed:
        if new.frame not in known:
            report.waiting_for_frame.append(new.source_id or "")
        else:
            batch.append(new)
    ids = store.append([*batch, *samples], new_frames=list(infos.values()))
    fresh = set(ids)
    kinds = Counter(e.kind for e in store.events(min(ids) - 1) if e.id in fresh) if ids else {}
    report.queued = kinds.get(EventKind.OVERRIDE, 0)
    report.samples = kinds.get(EventKind.SAMPLE, 0)
    report.duplicates = len(batch) - report.queued
    return report


def _name(names: Sequence[str], n: int, what: str) -> str:
    return names[n] if n < len(names) else f"{what} {n + 1}"


def _override(raw: bytes, store: LabelStore, report: IngestReport, where: str) -> NewEvent | None:
    try:
        doc = json.loads(raw)
        if (field := lone_surrogate(doc)) is not None:
            raise ValueError(f"{field}: {NOT_UNICODE}")
        event = wire.Event.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in err["loc"]) or "(document)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        report.invalid.append(f"{where}: {field}: {err['msg']}{more}")
        return None
    except ValueError as exc:
        report.invalid.append(f"{where}: {str(exc).splitlines()[0]}")
        return None
    source = f"{event.device}:{event.seq}"
    if event.type != OVERRIDE_TYPE:
        report.ignored[event.type] += 1
        return None
    try:
        details = OverrideDetails.model_validate(event.details)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"])
        report.invalid.append(f"event {source}: details.{where}: {err['msg']}")
        return None
    if problem := check_class(store.taxonomies, details.taxonomy, details.label):
        report.invalid.append(f"event {source}: details.label: {problem}")
        return None
    return NewEvent(
        EventKind.OVERRIDE,
        details.inspector,
        frame=details.frame_sha256,
        cls=details.label,
        taxonomy=details.taxonomy,
        model_said=details.predicted,
        model_version=details.model,
        source_id=source,
        at=event.at.astimezone(dt.UTC).replace(tzinfo=None) if event.at.tzinfo else event.at,
    )
