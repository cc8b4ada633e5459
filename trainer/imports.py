"""Import annotations from a JSON Lines file: one labelled frame per line.

    {"image": "frames/0001.png", "site": "toledo", "line": "line-1", "camera": "cam-1",
     "class": "scratch", "annotator": "ana", "taxonomy": "surface-defects@2"}

`image` (or `path`, as in `linefleet data generate`'s manifest.jsonl) is relative to the file
or absolute; `frame` (a sha256 already in the frame store) may be given instead. Other
fields are ignored. `annotator` and `taxonomy` default to the command's options.

Every line is read and checked first; any problem -> every problem is reported as
`FILE:LINE: field: message` and nothing is written (frames included).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from linefleet_core.errors import Finding, FindingsError, LinefleetError, UsageError
from linefleet_core.refs import Id, VersionedRef
from trainer.checks import RefusedEvents, check_batch, check_class
from trainer.events import EventKind, NewEvent
from trainer.frames import FrameStore, decode, sha256_of
from trainer.store import FrameInfo, LabelStore
from trainer.views import LabelState


class AnnotationLine(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    image: str | None = Field(default=None, validation_alias=AliasChoices("image", "path"))
    frame: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    site: Id
    line: Id
    camera: Id
    cls: Id = Field(alias="class")
    annotator: str | None = Field(default=None, min_length=1, max_length=128)
    taxonomy: VersionedRef | None = None


@dataclass(frozen=True)
class ImportResult:
    events: int
    new_frames: int


def import_annotations(
    path: Path,
    store: LabelStore,
    frames: FrameStore,
    *,
    annotator: str | None = None,
    taxonomy: str | None = None,
) -> ImportResult:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read ({exc})") from None
    findings: list[Finding] = []
    staged: list[tuple[AnnotationLine, str, bytes | None]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"{path}:{number}"
        row = _parse(raw, str(path), number, findings)
        if row is None:
            continue
        row = row.model_copy(
            update={"annotator": row.annotator or annotator, "taxonomy": row.taxonomy or taxonomy}
        )
        if not row.annotator:
            findings.append(Finding(str(path), number, 1, "annotator", "missing (or --annotator)"))
            continue
        if problem := check_class(store.taxonomies, row.taxonomy, row.cls):
            findings.append(Finding(str(path), number, 1, "class", problem))
            continue
        try:
            sha, data = _frame_of(row, path.parent, frames, where)
        except LinefleetError as exc:
            findings.append(Finding(str(path), number, 1, "image", str(exc)))
            continue
        staged.append((row, sha, data))
    if findings:
        raise FindingsError(findings)
    infos = {sha: FrameInfo(sha, r.site, r.line, r.camera) for r, sha, _ in staged}
    batch = [
        NewEvent(EventKind.ANNOTATION, r.annotator or "", frame=sha, cls=r.cls, taxonomy=r.taxonomy)
        for r, sha, _ in staged
    ]
    known = store.frames(infos)
    try:  # annotations only: checked without replaying the log
        check_batch(batch, LabelState(), {**infos, **known}, store.taxonomies)
    except RefusedEvents as exc:
        raise RefusedEvents([f"{path}: {p}" for p in exc.problems]) from None
    for _, _, data in staged:
        if data is not None:
            frames.put(data)
    ids = store.append(batch, new_frames=list(infos.values()))
    return ImportResult(len(ids), len(set(infos) - set(known)))


def _parse(raw: str, path: str, number: int, findings: list[Finding]) -> AnnotationLine | None:
    try:
        doc: Any = json.loads(raw)
    except json.JSONDecodeError as exc:
        findings.append(Finding(path, number, exc.colno, "", f"not JSON: {exc.msg}"))
        return None
    try:
        row = AnnotationLine.model_validate(doc)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            field = ".".join(str(p) for p in err["loc"])
            findings.append(Finding(path, number, 1, field, err["msg"]))
        return None
    if (row.image is None) == (row.frame is None):
        findings.append(Finding(path, number, 1, "image", "give exactly one of image, frame"))
        return None
    return row


def _frame_of(
    row: AnnotationLine, base: Path, frames: FrameStore, where: str
) -> tuple[str, bytes | None]:
    if row.frame is not None:
        if row.frame not in frames:
            raise UsageError(f"frame {row.frame[:12]} is not in the frame store")
        return row.frame, None
    image = Path(row.image or "")
    image = image if image.is_absolute() else base / image
    try:
        data = image.read_bytes()
    except OSError as exc:
        raise UsageError(f"{image}: cannot read ({exc.strerror})") from None
    decode(data, str(image))
    return sha256_of(data), data
