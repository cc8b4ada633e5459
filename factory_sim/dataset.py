"""Write a synthetic multi-line dataset to disk, and read it back.

`generate(out, taxonomy=..., lines=..., frames_per_line=..., seed=...)` renders every frame
of every line and writes (format version 1):

    OUT/dataset.json      what was generated: format, format_version (1), seed, size,
                          defect_rate, frames_per_line, classes (model-output order),
                          taxonomy (`name@N` or null), lines (site, line, camera, nuisance),
                          events (`KIND:SITE/LINE:FRAME`), frames (count), warnings
    OUT/manifest.jsonl    one JSON object per frame, in line order then `seq` order
    OUT/frames/<site>/<line>/<camera>/<seq:06d>.png     8-bit BGR PNG, size x size

Each manifest line has:

    path       frame file, relative to OUT, with forward slashes
    sha256     hex digest of the PNG file's bytes
    site, line, camera
    class      the label, a class id of `classes` (`ok` = no defect)
    truth      what was painted: the class, or `dust`/`oil` for `contamination`, `blob`
               for a class the generator has no painter for, `ok`
    taxonomy   the taxonomy ref the label belongs to, or null
    seq        frame number on its line (0-based); frames of a line are in time order
    timestamp  ISO 8601 UTC (`start + seq * interval`; the same for every line)
    drift      drift events active on this frame (`KIND:SITE/LINE:FRAME`), oldest first
    nuisance   the line's nuisance parameters in effect (supplier, lighting, optics,
               conveyor), after drift

Generation is deterministic: the same arguments give byte-identical files. Every frame has
its own random generator (seed, line, camera, seq), so a frame does not depend on the
others. Nothing half-written is left behind: files are written to a temporary directory
next to OUT and moved into place at the end.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from factory_sim.classes import ClassSet, class_set
from factory_sim.defects import OK
from factory_sim.profiles import DriftEvent, LineProfile, line_profiles, profile_at
from factory_sim.render import frame_rng, render
from linefleet_core.taxonomy import Taxonomy

FORMAT = "linefleet-synthetic-frames"
FORMAT_VERSION = 1
MANIFEST = "manifest.jsonl"
INFO = "dataset.json"
DEFAULT_START = dt.datetime(2026, 1, 5, 6, 0, tzinfo=dt.UTC)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class FrameRecord:
    path: str
    sha256: str
    site: str
    line: str
    camera: str
    cls: str
    truth: str
    taxonomy: str | None
    seq: int
    timestamp: str
    drift: tuple[str, ...]
    nuisance: dict[str, Any]

    @property
    def line_key(self) -> str:
        return f"{self.site}/{self.line}"

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "site": self.site,
            "line": self.line,
            "camera": self.camera,
            "class": self.cls,
            "truth": self.truth,
            "taxonomy": self.taxonomy,
            "seq": self.seq,
            "timestamp": self.timestamp,
            "drift": list(self.drift),
            "nuisance": self.nuisance,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> FrameRecord:
        return cls(
            path=doc["path"],
            sha256=doc["sha256"],
            site=doc["site"],
            line=doc["line"],
            camera=doc["camera"],
            cls=doc["class"],
            truth=doc["truth"],
            taxonomy=doc["taxonomy"],
            seq=doc["seq"],
            timestamp=doc["timestamp"],
            drift=tuple(doc["drift"]),
            nuisance=doc["nuisance"],
        )


@dataclass(frozen=True)
class Manifest:
    root: Path
    info: dict[str, Any]
    records: tuple[FrameRecord, ...]

    @property
    def classes(self) -> list[str]:
        return list(self.info["classes"])

    @property
    def lines(self) -> list[str]:
        return [f"{d['site']}/{d['line']}" for d in self.info["lines"]]

    def for_line(self, key: str) -> list[FrameRecord]:
        return [r for r in self.records if r.line_key == key]

    def file(self, record: FrameRecord) -> Path:
        return self.root / record.path

    @classmethod
    def read(cls, root: Path) -> Manifest:
        info = json.loads((root / INFO).read_text(encoding="utf-8"))
        if info.get("format") != FORMAT or info.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{root / INFO}: not a {FORMAT} v{FORMAT_VERSION} dataset")
        with (root / MANIFEST).open(encoding="utf-8") as fh:
            records = tuple(FrameRecord.from_json(json.loads(row)) for row in fh if row.strip())
        return cls(root, info, records)


def _timestamp(start: dt.datetime, seq: int, interval_s: float) -> str:
    moment = start + dt.timedelta(seconds=seq * interval_s)
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _pick_class(classes: ClassSet, defect_rate: float, rng: Any) -> str:
    if classes.has_ok and rng.random() >= defect_rate:
        return OK
    defects = classes.defects
    return defects[int(rng.integers(len(defects)))]


def iter_frames(
    profiles: Sequence[LineProfile],
    classes: ClassSet,
    *,
    frames_per_line: int,
    seed: int,
    defect_rate: float,
    size: int,
    events: Sequence[DriftEvent],
    start: dt.datetime = DEFAULT_START,
    interval_s: float = 1.0,
) -> Iterator[tuple[FrameRecord, bytes]]:
    """Render every frame in manifest order: (record, PNG bytes). Pure: touches no files."""
    for base in profiles:
        for seq in range(frames_per_line):
            profile, active = profile_at(base, events, seq, seed)
            rng = frame_rng(seed, base, seq)
            cls = _pick_class(classes, defect_rate, rng)
            rendered = render(profile, cls, rng, size)
            ok, buf = cv2.imencode(".png", rendered.image)
            if not ok:  # pragma: no cover - OpenCV always encodes uint8 BGR
                raise RuntimeError("PNG encoding failed")
            data = buf.tobytes()
            record = FrameRecord(
                path=f"frames/{base.site}/{base.line}/{base.camera}/{seq:06d}.png",
                sha256=hashlib.sha256(data).hexdigest(),
                site=base.site,
                line=base.line,
                camera=base.camera,
                cls=cls,
                truth=rendered.truth,
                taxonomy=classes.taxonomy,
                seq=seq,
                timestamp=_timestamp(start, seq, interval_s),
                drift=tuple(str(e) for e in active),
                nuisance=profile.nuisance(),
            )
            yield record, data


def check_events(events: Sequence[DriftEvent], profiles: Sequence[LineProfile]) -> None:
    keys = {p.key for p in profiles}
    for event in events:
        if event.line not in keys:
            known = ", ".join(sorted(keys))
            raise ValueError(f"drift event {event}: unknown line {event.line!r} (lines: {known})")


def generate(
    out: Path,
    *,
    taxonomy: Taxonomy | ClassSet | Sequence[str],
    lines: Sequence[LineProfile] | tuple[int, int],
    frames_per_line: int,
    seed: int,
    defect_rate: float = 0.3,
    size: int = 128,
    events: Sequence[DriftEvent] = (),
    start: dt.datetime = DEFAULT_START,
    interval_s: float = 1.0,
    progress: Progress | None = None,
    overwrite: bool = False,
) -> Manifest:
    """Render and write a dataset to `out` (see the module docstring for the format).

    `lines` is a list of profiles or `(sites, lines_per_site)`. `out` must not exist or be
    empty unless `overwrite` is set. Raises ValueError for bad arguments, FileExistsError
    for a non-empty `out`.
    """
    classes = class_set(taxonomy)
    profiles = list(line_profiles(lines[0], lines[1], seed) if isinstance(lines, tuple) else lines)
    if frames_per_line < 1:
        raise ValueError(f"frames_per_line must be >= 1, got {frames_per_line}")
    if not 0.0 <= defect_rate <= 1.0:
        raise ValueError(f"defect_rate must be in [0, 1], got {defect_rate}")
    if len({p.key for p in profiles}) != len(profiles):
        raise ValueError("two line profiles have the same site/line")
    check_events(events, profiles)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty")
    out.parent.mkdir(parents=True, exist_ok=True)
    total = len(profiles) * frames_per_line
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        records: list[FrameRecord] = []
        with (tmp / MANIFEST).open("w", encoding="utf-8", newline="\n") as manifest:
            frames = iter_frames(
                profiles,
                classes,
                frames_per_line=frames_per_line,
                seed=seed,
                defect_rate=defect_rate,
                size=size,
                events=events,
                start=start,
                interval_s=interval_s,
            )
            for done, (record, data) in enumerate(frames, 1):
                target = tmp / record.path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                manifest.write(json.dumps(record.to_json(), sort_keys=True) + "\n")
                records.append(record)
                if progress is not None:
                    progress(done, total)
        info = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "seed": seed,
            "size": size,
            "defect_rate": defect_rate,
            "frames_per_line": frames_per_line,
            "classes": list(classes.ids),
            "taxonomy": classes.taxonomy,
            "lines": [
                {"site": p.site, "line": p.line, "camera": p.camera, "nuisance": p.nuisance()}
                for p in profiles
            ],
            "events": [str(e) for e in events],
            "frames": total,
            "warnings": list(classes.warnings),
        }
        (tmp / INFO).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", "utf-8")
        if out.is_dir():
            shutil.rmtree(out)
        elif out.exists():
            out.unlink()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Manifest(out, info, tuple(records))
