"""The line cameras: the demo feeds generated frames into each edge agent's watched folder.

`linefleet edge run --frames DIR` watches DIR for new images, as it would a camera's drop
folder. Frames are copied under a fresh name (write to a temp name, then rename, so the agent
never reads half a file), and each name is remembered with its ground truth for the inspector.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Shot:
    """One frame shown to a line's camera: the file name the edge sees, and what it really is."""

    name: str
    source: Path
    line: str
    camera: str
    truth: str
    sha256: str


def manifest(data: Path) -> list[dict[str, Any]]:
    with (data / "manifest.jsonl").open(encoding="utf-8") as rows:
        return [json.loads(row) for row in rows if row.strip()]


class Camera:
    """Frames of one line, fed in manifest order (cycling) into the agent's watched folder."""

    def __init__(self, data: Path, line: str, folder: Path) -> None:
        self.line = line
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._rows = [r for r in manifest(data) if f"{r['site']}/{r['line']}" == line]
        if not self._rows:
            raise ValueError(f"no generated frames for {line} in {data}")
        self._data = data
        self._next = 0
        self.shown: dict[str, Shot] = {}

    def _cycle(self) -> Iterator[dict[str, Any]]:
        while True:
            yield self._rows[self._next % len(self._rows)]
            self._next += 1

    def feed(self, count: int, batch: str) -> list[Shot]:
        shots = []
        rows = self._cycle()
        for n in range(count):
            row = next(rows)
            source = self._data / row["path"]
            name = f"{batch}-{n:05d}{source.suffix}"
            temp = self.folder / f".{name}.part"
            shutil.copyfile(source, temp)
            temp.replace(self.folder / name)
            shot = Shot(name, source, self.line, row["camera"], row["class"], row["sha256"])
            self.shown[name] = shot
            shots.append(shot)
        return shots


def results(path: Path) -> list[dict[str, Any]]:
    """The decisions an edge agent wrote so far (one JSON object per line)."""
    if not path.exists():
        return []
    out = []
    for row in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(row))
        except ValueError:
            continue  # the agent is writing this line right now
    return out
