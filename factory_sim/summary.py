"""What a generated dataset holds, per camera stream: frames, class counts, drift events."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from factory_sim.defects import OK
from factory_sim.manifest import Manifest


@dataclass(frozen=True)
class StreamSummary:
    line: str
    camera: str
    frames: int
    classes: dict[str, int]
    drift: tuple[str, ...]

    @property
    def defect_rate(self) -> float:
        return 1.0 - self.classes.get(OK, 0) / self.frames if self.frames else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "line": self.line,
            "camera": self.camera,
            "frames": self.frames,
            "defect_rate": round(self.defect_rate, 4),
            "classes": self.classes,
            "drift": list(self.drift),
        }


def summarize(manifest: Manifest) -> list[StreamSummary]:
    """One summary per camera stream, in manifest order; every class listed (0 if absent)."""
    order: dict[tuple[str, str], list[str]] = {}
    drift: dict[tuple[str, str], dict[str, None]] = {}
    for record in manifest.records:
        key = (record.line_key, record.camera)
        order.setdefault(key, []).append(record.cls)
        drift.setdefault(key, {}).update(dict.fromkeys(record.drift))
    out = []
    for (line, camera), labels in order.items():
        counts = Counter(labels)
        classes = {c: counts.get(c, 0) for c in manifest.classes}
        out.append(StreamSummary(line, camera, len(labels), classes, tuple(drift[line, camera])))
    return out


def render_table(summaries: list[StreamSummary], classes: list[str]) -> str:
    """A plain-text table, one row per camera stream."""
    head = ["line", "camera", "frames", "defects", *classes, "drift"]
    rows = [
        [s.line, s.camera, str(s.frames), f"{s.defect_rate:.0%}",
         *(str(s.classes[c]) for c in classes), ", ".join(s.drift) or "-"]
        for s in summaries
    ]  # fmt: skip
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in [head, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)
