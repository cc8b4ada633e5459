"""Import annotations: JSON Lines here; folder trees and MVTec AD in `trainer.folders`.

JSON Lines: one labelled frame per line.

    {"image": "frames/0001.png", "site": "toledo", "line": "line-1", "camera": "cam-1",
     "class": "scratch", "annotator": "ana", "taxonomy": "surface-defects@2"}

`image` (or `path`, as in `linefleet data generate`'s manifest.jsonl) is relative to the file
or absolute; `frame` (a sha256 already in the frame store) may be given instead. Other
fields are ignored. `annotator` and `taxonomy` default to the command's options.

Every line is read and checked first; any problem -> every problem is reported as
`FILE:LINE: field: message` and nothing is written (frames included). When the fleet repo
declares lines, site, line and camera are checked against it (`trainer.places`), with a
did-you-mean, so a typo fails the import instead of surfacing later as "no holdout frames".
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from linefleet_core import jsonlines
from linefleet_core.errors import Finding, FindingsError, LinefleetError, UsageError
from linefleet_core.imagefile import ImageFileRefused, read_image_file
from linefleet_core.refs import Id, VersionedRef
from linefleet_core.text import NOT_UNICODE, lone_surrogate
from trainer.checks import RefusedEvents, check_batch, check_class
from trainer.events import EventKind, NewEvent
from trainer.frames import FrameStore, decode, sha256_of
from trainer.places import Places
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
    already: int = 0
    """Annotations skipped as already imported: each said what its annotator's latest
    annotation of that image says (class, taxonomy version)."""


@dataclass(frozen=True)
class Located:
    """Where a row came from, for findings: a file and line, or a folder (line 0)."""

    path: str
    line: int = 0
    col: int = 1


def stage(
    rows: Iterable[tuple[Located, AnnotationLine]],
    base: Path,
    store: LabelStore,
    frames: FrameStore,
    places: Places | None,
    findings: list[Finding],
) -> list[tuple[AnnotationLine, str, bytes | None]]:
    """Check every row (annotator, class, fleet place, image); collect findings, keep the rest.

    A problem shared by many rows of one folder (a misspelt line folder) is reported once.
    One annotator gives one image one class and one place in an import: the same image again
    with another (in two class folders, or on two rows) is a finding, since which one is meant
    cannot be told (the store would keep the later without a word); the same again is taken
    once.
    """
    staged: list[tuple[AnnotationLine, str, bytes | None]] = []
    seen: set[tuple[str, int, str, str]] = set()
    first: dict[tuple[str, str], tuple[Located, AnnotationLine]] = {}

    def add(at: Located, field: str, message: str) -> None:
        key = (at.path, at.line, field, message)
        if key not in seen:
            seen.add(key)
            findings.append(Finding(at.path, at.line, at.col, field, message))

    for at, row in rows:
        problems: list[tuple[str, str]] = []
        if not row.annotator:
            problems.append(("annotator", "missing (or --annotator)"))
        if problem := check_class(store.taxonomies, row.taxonomy, row.cls):
            problems.append(("class", problem))
        if places is not None:
            problems += places.check(row.site, row.line, row.camera)
        for field, message in problems:
            add(at, field, message)
        if problems:
            continue
        try:
            sha, data = _frame_of(row, base, frames, at.path)
        except LinefleetError as exc:
            add(at, "image", str(exc))
            continue
        earlier = first.setdefault((sha, row.annotator or ""), (at, row))
        if earlier[1] is not row:
            if _said(earlier[1]) != _said(row):
                was = earlier[0]
                there = f"{was.path}:{was.line}" if was.line else earlier[1].image
                add(
                    at,
                    "class",
                    f"{row.image or row.frame} is the same image as {there}, which says "
                    f"{_said(earlier[1])}; one annotator gives an image one class and place",
                )
            continue
        staged.append((row, sha, data))
    return staged


def _said(row: AnnotationLine) -> str:
    """What a row says of its image: class and place."""
    return f"{row.cls!r} on {row.site}/{row.line} {row.camera}"


def write_staged(
    staged: list[tuple[AnnotationLine, str, bytes | None]],
    store: LabelStore,
    frames: FrameStore,
    source: str,
) -> ImportResult:
    infos = {sha: FrameInfo(sha, r.site, r.line, r.camera) for r, sha, _ in staged}
    batch = [
        NewEvent(EventKind.ANNOTATION, r.annotator or "", frame=sha, cls=r.cls, taxonomy=r.taxonomy)
        for r, sha, _ in staged
    ]
    known = store.frames(infos)
    try:  # annotations only: checked without replaying the log
        check_batch(batch, LabelState(), {**infos, **known}, store.taxonomies)
    except RefusedEvents as exc:
        raise RefusedEvents([f"{source}: {p}" for p in exc.problems]) from None
    for _, _, data in staged:
        if data is not None:
            frames.put(data)
    ids = store.append(batch, new_frames=list(infos.values()), repeats=False)
    return ImportResult(len(ids), len(set(infos) - set(known)), len(batch) - len(ids))


def import_annotations(
    path: Path,
    store: LabelStore,
    frames: FrameStore,
    *,
    annotator: str | None = None,
    taxonomy: str | None = None,
    places: Places | None = None,
) -> ImportResult:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror})") from None
    findings: list[Finding] = []
    rows: list[tuple[Located, AnnotationLine]] = []
    for number, raw in enumerate(_lines(data, str(path), findings), start=1):
        if not raw.strip():
            continue
        row = _parse(raw, str(path), number, findings)
        if row is None:
            continue
        row = row.model_copy(
            update={"annotator": row.annotator or annotator, "taxonomy": row.taxonomy or taxonomy}
        )
        rows.append((Located(str(path), number), row))
    staged = stage(rows, path.parent, store, frames, places, findings)
    if findings:
        raise FindingsError(findings)
    return write_staged(staged, store, frames, str(path))


def _lines(data: bytes, path: str, findings: list[Finding]) -> list[str]:
    """The file's lines (`linefleet_core.jsonlines`); one that is not UTF-8 is a finding and
    reads as empty."""
    out = []
    for number, text, problem in jsonlines.lines(data):
        if problem is not None:
            findings.append(Finding(path, number, 1, "", f"{problem}; save the file as UTF-8"))
        out.append(text)
    return out


def _parse(raw: str, path: str, number: int, findings: list[Finding]) -> AnnotationLine | None:
    try:
        doc: Any = jsonlines.loads(raw)
    except json.JSONDecodeError as exc:
        findings.append(Finding(path, number, exc.colno, "", f"not JSON: {exc.msg}"))
        return None
    except jsonlines.DuplicateKey as exc:
        findings.append(Finding(path, number, 1, exc.key, str(exc)))
        return None
    if (field := lone_surrogate(doc)) is not None:
        findings.append(Finding(path, number, 1, field, NOT_UNICODE))
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
    """The frame's sha256, and its bytes when it is not in the frame store yet."""
    if row.frame is not None:
        if row.frame not in frames:
            raise UsageError(f"frame {row.frame[:12]} is not in the frame store")
        return row.frame, None
    image = Path(row.image or "")
    image = image if image.is_absolute() else base / image
    try:  # not a folder, a pipe that would block the import, nor a file too big to read
        data = read_image_file(image)
    except ImageFileRefused as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"{image}: cannot read ({exc.strerror})") from None
    decode(data, str(image))
    return sha256_of(data), data
