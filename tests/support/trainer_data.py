"""Trainer test data: three versions of a small taxonomy and decodable frames (PNG bytes)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from linefleet_core.taxonomy import Taxonomy


def _tax(version: int, classes: list[str], migration: list[dict[str, Any]]) -> Taxonomy:
    return Taxonomy.model_validate(
        {
            "kind": "Taxonomy",
            "name": "surface-defects",
            "version": version,
            "classes": [{"id": c, "definition": c, "severity": "minor"} for c in classes],
            "migration": migration,
        }
    )


def taxonomies() -> dict[str, Taxonomy]:
    """v1 -> v2: split contamination into dust|oil, rename spot to pit.
    v2 -> v3: merge dust+oil into particle, deprecate pit, add dent."""
    v1 = _tax(1, ["ok", "scratch", "contamination", "spot"], [])
    v2 = _tax(
        2,
        ["ok", "scratch", "dust", "oil", "pit"],
        [{"split": "contamination", "into": ["dust", "oil"]}, {"rename": "spot", "to": "pit"}],
    )
    v3 = _tax(
        3,
        ["ok", "scratch", "particle", "dent"],
        [{"merge": ["dust", "oil"], "into": "particle"}, {"deprecate": "pit"}, {"add": "dent"}],
    )
    return {t.ref: t for t in (v1, v2, v3)}


def png(seed: int, size: int = 32) -> bytes:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return bytes(buf)


def gif_declaring(width: int, height: int) -> bytes:
    """A 1x1 GIF whose screen and image descriptor declare `width` x `height` (54 bytes)."""
    header = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00" * 6
    image = b"," + struct.pack("<HHHHB", 0, 0, width, height, 0)
    return header + image + b"\x02\x02\x44\x01\x00;"


def write_taxonomies(root: Path) -> None:
    """The three versions as `taxonomies/surface-defects/v<N>.yaml` under `root`."""
    for tax in taxonomies().values():
        folder = root / "taxonomies" / tax.name
        folder.mkdir(parents=True, exist_ok=True)
        doc = tax.model_dump(mode="json", exclude_defaults=False)
        doc["migration"] = [
            {k: v for k, v in step.items() if v is not None} for step in doc["migration"]
        ]
        (folder / f"v{tax.version}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def override_event(
    seq: int, frame_sha: str, label: str, *, device: str = "tol-edge-01", predicted: str = "ok"
) -> bytes:
    """An `inspection-override` event as the edge sends it on `.../events`."""
    doc = {
        "protocol": 1,
        "kind": "Event",
        "site": "toledo",
        "device": device,
        "seq": seq,
        "at": "2026-11-21T23:57:02.001Z",
        "type": "inspection-override",
        "line": "toledo/line-1",
        "details": {
            "frame_sha256": frame_sha,
            "camera": "cam-1",
            "model": "surface-classifier@2",
            "predicted": predicted,
            "inspector": "insp-7",
            "label": label,
            "taxonomy": "surface-defects@2",
        },
    }
    return json.dumps(doc).encode()


def frame_payload(jpeg: bytes, frame_id: str, device: str = "tol-edge-01") -> bytes:
    """An `LFF1` frames payload carrying `jpeg` from toledo/line-1 cam-1."""
    from linefleet_core import wire

    meta = wire.FrameMeta(
        protocol=1,
        kind="Frame",
        site="toledo",
        device=device,
        line="toledo/line-1",
        camera="cam-1",
        frame_id=frame_id,
        captured_at=dt.datetime(2026, 11, 21, 23, 57, tzinfo=dt.UTC),
        reason="disagreement",
        model="surface-classifier@2",
        predicted="ok",
        confidence=0.6,
        sha256=hashlib.sha256(jpeg).hexdigest(),
        size=len(jpeg),
    )
    return wire.encode_frame(meta, jpeg)


def jpeg(seed: int, size: int = 32) -> bytes:
    rng = np.random.default_rng(seed)
    ok, buf = cv2.imencode(".jpg", rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
    assert ok
    return bytes(buf)
