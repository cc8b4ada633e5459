"""Generate a synthetic multi-line dataset and write it to disk (format: `factory_sim.manifest`).

    manifest = generate(Path("data"), taxonomy=["ok", "scratch", "dent"], lines=(2, 3),
                        frames_per_line=200, seed=7)

Generation is deterministic: the same arguments give byte-identical files. Every frame has
its own random generator (seed, line, camera, seq), so a frame does not depend on the others
(`render_record(job, stream, seq)` renders any one of them alone). Nothing
half-written is left behind: files go to a temporary directory next to `out`, which is moved
into place at the end.
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
import numpy as np

from factory_sim.classes import ClassSet, class_set
from factory_sim.defects import OK
from factory_sim.drift import profile_at
from factory_sim.manifest import FORMAT, FORMAT_VERSION, INFO, MANIFEST, FrameRecord, Manifest
from factory_sim.profiles import DriftEvent, LineProfile, line_profiles
from factory_sim.render import MAX_SIZE, MIN_SIZE, frame_rng, render
from linefleet_core.taxonomy import Taxonomy

__all__ = ["DEFAULT_START", "FrameRecord", "Job", "Manifest", "generate", "iter_frames"]

DEFAULT_START = dt.datetime(2026, 1, 5, 6, 0, tzinfo=dt.UTC)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Job:
    """Everything needed to render any frame of a dataset."""

    profiles: tuple[LineProfile, ...]
    classes: ClassSet
    frames_per_line: int
    seed: int
    defect_rate: float = 0.3
    size: int = 128
    events: tuple[DriftEvent, ...] = ()
    start: dt.datetime = DEFAULT_START
    interval_s: float = 1.0

    @property
    def total(self) -> int:
        return len(self.profiles) * self.frames_per_line


def _timestamp(start: dt.datetime, seq: int, interval_s: float) -> str:
    moment = start + dt.timedelta(seconds=seq * interval_s)
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _pick_class(classes: ClassSet, defect_rate: float, rng: np.random.Generator) -> str:
    if classes.has_ok and rng.random() >= defect_rate:
        return OK
    defects = classes.defects
    return defects[int(rng.integers(len(defects)))]


def render_record(job: Job, index: int, seq: int) -> tuple[FrameRecord, bytes]:
    """Frame `seq` of camera stream `index`: its manifest record and its PNG bytes."""
    base = job.profiles[index]
    profile, active = profile_at(base, job.events, seq, job.seed)
    rng = frame_rng(job.seed, base, seq)
    cls = _pick_class(job.classes, job.defect_rate, rng)
    rendered = render(profile, cls, rng, job.size)
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
        taxonomy=job.classes.taxonomy,
        box=rendered.box,
        seq=seq,
        timestamp=_timestamp(job.start, seq, job.interval_s),
        drift=tuple(str(e) for e in active),
        nuisance=profile.nuisance(),
    )
    return record, data


def iter_frames(job: Job) -> Iterator[tuple[FrameRecord, bytes]]:
    """Every frame in manifest order: (record, PNG bytes). Touches no files."""
    for index in range(len(job.profiles)):
        for seq in range(job.frames_per_line):
            yield render_record(job, index, seq)


def _check(job: Job) -> None:
    if job.frames_per_line < 1:
        raise ValueError(f"frames_per_line must be >= 1, got {job.frames_per_line}")
    if not MIN_SIZE <= job.size <= MAX_SIZE:
        raise ValueError(f"size must be in [{MIN_SIZE}, {MAX_SIZE}], got {job.size}")
    if not 0.0 <= job.defect_rate <= 1.0:
        raise ValueError(f"defect_rate must be in [0, 1], got {job.defect_rate}")
    streams = [(p.key, p.camera) for p in job.profiles]
    if not streams:
        raise ValueError("at least one line is needed")
    if len(set(streams)) != len(streams):
        raise ValueError("two line profiles have the same site/line and camera")
    keys = {p.key for p in job.profiles}
    for event in job.events:
        if event.line not in keys:
            known = ", ".join(sorted(keys))
            raise ValueError(f"drift event {event}: unknown line {event.line!r} (lines: {known})")


def _info(job: Job) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "seed": job.seed,
        "size": job.size,
        "defect_rate": job.defect_rate,
        "frames_per_line": job.frames_per_line,
        "classes": list(job.classes.ids),
        "taxonomy": job.classes.taxonomy,
        "lines": [
            {"site": p.site, "line": p.line, "camera": p.camera, "nuisance": p.nuisance()}
            for p in job.profiles
        ],
        "events": [str(e) for e in job.events],
        "frames": job.total,
        "warnings": list(job.classes.warnings),
    }


def write(
    job: Job,
    out: Path,
    *,
    progress: Progress | None = None,
    overwrite: bool = False,
) -> Manifest:
    """Render `job` into `out`; raise FileExistsError if `out` is not empty (unless overwrite)."""
    _check(job)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        records: list[FrameRecord] = []
        with (tmp / MANIFEST).open("w", encoding="utf-8", newline="\n") as manifest:
            for done, (record, data) in enumerate(iter_frames(job), 1):
                target = tmp / record.path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                manifest.write(json.dumps(record.to_json(), sort_keys=True) + "\n")
                records.append(record)
                if progress is not None:
                    progress(done, job.total)
        info = _info(job)
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
    """Render and write a dataset to `out` (see `factory_sim.manifest` for the format).

    `lines` is a list of profiles (one per camera stream) or `(sites, lines_per_site)`.
    `out` must not exist or be empty unless `overwrite` is set. Raises ValueError for bad
    arguments, FileExistsError for a non-empty `out`.
    """
    classes = class_set(taxonomy)
    if isinstance(lines, tuple) and all(isinstance(n, int) for n in lines):
        sites, per_site = lines
        profiles: Sequence[LineProfile] = line_profiles(int(sites), int(per_site), seed)
    else:
        profiles = lines  # type: ignore[assignment]
    job = Job(
        profiles=tuple(profiles),
        classes=classes,
        frames_per_line=frames_per_line,
        seed=seed,
        defect_rate=defect_rate,
        size=size,
        events=tuple(events),
        start=start,
        interval_s=interval_s,
    )
    return write(job, Path(out), progress=progress, overwrite=overwrite)
