"""The inspector station: a person at the line who corrects the model's wrong calls.

The edge agent has no inspector input yet, so the demo plays the station: for frames where the
edge's decision differs from the frame's true class, it writes the `inspection-override`
events the edge would send on `.../events` and the `LFF1` frame payloads it would send on
`.../frames` (docs/protocol.md sections 7 and 9). `linefleet labels ingest-events` reads both.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from linefleet.demo.camera import Shot


def overrides(
    shots: dict[str, Shot], decisions: Sequence[dict[str, Any]], limit: int
) -> list[tuple[Shot, dict[str, Any]]]:
    """(frame, decision) pairs where a decided label is wrong, at most `limit`."""
    wrong = []
    for decision in decisions:
        shot = shots.get(str(decision.get("frame_id")))
        label = decision.get("label")
        if shot is not None and label is not None and label != shot.truth:
            wrong.append((shot, decision))
    return wrong[:limit]


def write(
    pairs: Sequence[tuple[Shot, dict[str, Any]]],
    device: str,
    taxonomy: str,
    events: Path,
    frames: Path,
) -> int:
    """Write the events (JSON Lines) and one `.lff` payload per frame; return the count."""
    import cv2

    from linefleet_core import wire

    site, _, device_id = device.partition("/")
    frames.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    rows = []
    for seq, (shot, decision) in enumerate(pairs, start=1):
        image = cv2.imread(str(shot.source), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{shot.source}: cannot read the frame")
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        if not ok:
            raise ValueError(f"{shot.source}: cannot encode as JPEG")
        jpeg = bytes(buf)
        sha = hashlib.sha256(jpeg).hexdigest()
        meta = wire.FrameMeta(
            protocol=1,
            kind="Frame",
            site=site,
            device=device_id,
            line=shot.line,
            camera=shot.camera,
            frame_id=shot.name,
            captured_at=now,
            reason="defect" if decision["label"] != "ok" else "sample",
            model=decision["model"],
            predicted=decision["label"],
            confidence=float(decision.get("confidence") or 0.0),
            sha256=sha,
            size=len(jpeg),
        )
        (frames / f"{seq:05d}.lff").write_bytes(wire.encode_frame(meta, jpeg))
        rows.append(
            {
                "protocol": 1,
                "kind": "Event",
                "site": site,
                "device": device_id,
                "seq": seq,
                "at": now.isoformat().replace("+00:00", "Z"),
                "type": "inspection-override",
                "line": shot.line,
                "details": {
                    "frame_sha256": sha,
                    "camera": shot.camera,
                    "model": decision["model"],
                    "predicted": decision["label"],
                    "inspector": "inspector-1",
                    "label": shot.truth,
                    "taxonomy": taxonomy,
                },
            }
        )
    events.parent.mkdir(parents=True, exist_ok=True)
    events.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return len(rows)
