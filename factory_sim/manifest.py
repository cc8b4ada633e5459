"""The on-disk format of a synthetic dataset, and reading it back (`Manifest.read(root)`).

`factory_sim.dataset.generate` writes (format version 1):

    OUT/dataset.json      what was generated: format, format_version (1), seed, size,
                          defect_rate, frames_per_line, classes (model-output order),
                          taxonomy (`name@N` or null), lines (one entry per camera stream:
                          site, line, camera, nuisance),
                          events (`KIND:SITE/LINE:FRAME[:RAMP]`), frames (count), warnings
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
    box        the defect's bounding box in the frame, [x0, y0, x1, y1] in pixels (x1, y1
               exclusive), or null for `ok`
    seq        frame number on its line (0-based); frames of a line are in time order
    timestamp  ISO 8601 UTC (`start + seq * interval`; the same for every line)
    drift      drift events active on this frame (`KIND:SITE/LINE:FRAME[:RAMP]`), oldest
               first (a ramped event counts as active from its first frame)
    nuisance   the line's nuisance parameters in effect (supplier, lighting, optics,
               conveyor), after drift

A line with several cameras has one frame stream per camera (`seq` counts per camera).
Consumers read the JSON directly (the trainer and the edge do not import this package);
unknown keys must be ignored, so keys can be added without a version change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = "linefleet-synthetic-frames"
FORMAT_VERSION = 1
MANIFEST = "manifest.jsonl"
INFO = "dataset.json"


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
    box: tuple[int, int, int, int] | None
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
            "box": None if self.box is None else list(self.box),
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
            box=None if doc.get("box") is None else tuple(doc["box"]),
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
        """`site/line` keys in generation order (once each, even with several cameras)."""
        return list(dict.fromkeys(f"{d['site']}/{d['line']}" for d in self.info["lines"]))

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
