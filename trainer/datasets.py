"""Dataset versions: which frames with which class, under one taxonomy version, split once.

    version = build(replay(events, taxonomies), taxonomies["surface-defects@2"])
    version.hash          # sha256 over (frame, site/line/camera, class) items + taxonomy + split
    version.holdout("toledo/line-1")

A frame's class is its latest QA-confirmed override if it has one, else the majority of its
annotators' current labels (a tie is left out as disputed). Labels still under an older
taxonomy version or waiting for review are left out, and counted. Frames are named by their
content hash, so the dataset hash covers the pixels too.

The split depends on the frame's hash only: a frame that is in a line's holdout stays there in
every later version, so per-line holdout scores are comparable across versions.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from linefleet_core.taxonomy import Taxonomy
from trainer.events import EventKind
from trainer.views import Label, LabelState

HOLDOUT_PERCENT = 20
SPLIT_RULE = f"sha256(frame)/holdout-{HOLDOUT_PERCENT}%/v1"


class Split(enum.StrEnum):
    TRAIN = "train"
    HOLDOUT = "holdout"


def split_of(frame: str) -> Split:
    bucket = int(hashlib.sha256(f"holdout:{frame}".encode()).hexdigest()[:8], 16) % 100
    return Split.HOLDOUT if bucket < HOLDOUT_PERCENT else Split.TRAIN


@dataclass(frozen=True)
class Item:
    frame: str
    site: str
    line: str
    camera: str
    cls: str
    split: Split

    @property
    def line_key(self) -> str:
        return f"{self.site}/{self.line}"


@dataclass(frozen=True)
class DatasetVersion:
    hash: str
    taxonomy: str
    classes: tuple[str, ...]
    items: tuple[Item, ...]
    excluded: dict[str, int] = field(default_factory=dict)
    last_event: int = 0

    @property
    def short(self) -> str:
        return f"ds-{self.hash[:12]}"

    def lines(self) -> list[str]:
        return sorted({i.line_key for i in self.items})

    def train(self, line: str | None = None) -> list[Item]:
        return [i for i in self.items if i.split is Split.TRAIN and line in (None, i.line_key)]

    def holdout(self, line: str | None = None) -> list[Item]:
        return [i for i in self.items if i.split is Split.HOLDOUT and line in (None, i.line_key)]

    def manifest(self) -> dict[str, Any]:
        return {
            "format_version": 1,
            "hash": self.hash,
            "taxonomy": self.taxonomy,
            "classes": list(self.classes),
            "split_rule": SPLIT_RULE,
            "last_event": self.last_event,
            "excluded": self.excluded,
            "items": [
                {
                    "frame": i.frame,
                    "site": i.site,
                    "line": i.line,
                    "camera": i.camera,
                    "class": i.cls,
                    "split": i.split.value,
                }
                for i in self.items
            ],
        }

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.hash}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.manifest(), indent=1, sort_keys=True), encoding="utf-8")
        tmp.replace(path)
        return path


def build(state: LabelState, taxonomy: Taxonomy) -> DatasetVersion:
    excluded: Counter[str] = Counter()
    by_frame: dict[str, list[Label]] = defaultdict(list)
    for label in state.labels.values():
        if label.taxonomy.partition("@")[0] != taxonomy.name:
            continue
        if label.cls is None:
            excluded["awaiting review"] += 1
        elif label.taxonomy != taxonomy.ref:
            excluded[f"under {label.taxonomy}"] += 1
        else:
            by_frame[label.frame].append(label)
    items = []
    for frame, labels in by_frame.items():
        cls = frame_class(labels)
        if cls is None:
            excluded["disputed (tied annotators)"] += 1
            continue
        first = labels[0]
        items.append(Item(frame, first.site, first.line, first.camera, cls, split_of(frame)))
    items.sort(key=lambda i: (i.line_key, i.frame))
    return DatasetVersion(
        hash=content_hash(taxonomy.ref, items),
        taxonomy=taxonomy.ref,
        classes=tuple(taxonomy.class_ids),
        items=tuple(items),
        excluded=dict(sorted(excluded.items())),
        last_event=state.last_event,
    )


def frame_class(labels: list[Label]) -> str | None:
    """The class of a frame from its current labels (None: disputed by tied annotators)."""
    if len(labels) == 1:  # most frames: one label, an override or a single annotator's
        return labels[0].cls
    overrides = [lab for lab in labels if lab.origin is EventKind.OVERRIDE]
    if overrides:
        return max(overrides, key=lambda lab: lab.id).cls
    latest: dict[str, Label] = {}
    for lab in sorted(labels, key=lambda lab: lab.id):
        latest[lab.author] = lab  # an annotator who labels a frame twice counts once, latest
    votes = Counter(lab.cls for lab in latest.values()).most_common()
    if len(votes) > 1 and votes[0][1] == votes[1][1]:
        return None
    return votes[0][0]


def content_hash(taxonomy: str, items: list[Item]) -> str:
    doc = {
        "taxonomy": taxonomy,
        "split_rule": SPLIT_RULE,
        "items": sorted([i.frame, i.site, i.line, i.camera, i.cls] for i in items),
    }
    return hashlib.sha256(json.dumps(doc, separators=(",", ":")).encode()).hexdigest()


def load_manifest(path: Path) -> DatasetVersion:
    doc = json.loads(path.read_text(encoding="utf-8"))
    items = tuple(
        Item(i["frame"], i["site"], i["line"], i["camera"], i["class"], Split(i["split"]))
        for i in doc["items"]
    )
    return DatasetVersion(
        hash=doc["hash"],
        taxonomy=doc["taxonomy"],
        classes=tuple(doc["classes"]),
        items=items,
        excluded=doc["excluded"],
        last_event=doc["last_event"],
    )
