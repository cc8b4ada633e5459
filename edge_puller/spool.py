"""Anomaly-native logging: keep only the frames worth a human's look, within budgets.

Per line's telemetry policy a frame is kept when the decided class is a defect
(`keep_defects`), its top confidence lies inside the uncertainty band, or the shadow/canary
candidate disagrees with the serving model (`keep_disagreements`). Every other frame is only
counted. Kept frames are JPEG-encoded into the wire's frame envelope and written to a bounded
on-disk spool (`spool_mb`; the oldest are evicted first, and evictions are counted). When the
device is connected, `next_upload` hands out the oldest spooled frame while the day's upload
(`daily_upload_budget_mb`, UTC days) allows it; `uploaded` deletes it after the broker's PUBACK.

A line the device no longer serves keeps its spool until it is drained: it is marked retired
(`retired_at` in `counters.json`, so a restart remembers), keeps uploading within its budget,
and is deleted once empty, or after a grace period with what is left counted (`delete`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import cv2

from edge_puller.engine import Decision
from edge_puller.runtime import Frame
from linefleet_core.atomic import clean_temps, write_atomic
from linefleet_core.fleet import TelemetryPolicy
from linefleet_core.wire import DetectedBox, FrameMeta, encode_frame

MB = 1024 * 1024
Reason = Literal["defect", "uncertain", "disagreement"]
FrameReason = Literal["defect", "uncertain", "disagreement", "sample"]
SUFFIX = ".lff"


def keep_reason(decision: Decision, policy: TelemetryPolicy) -> Reason | None:
    """Why this frame is worth keeping (`defect`, `uncertain`, `disagreement`), or None."""
    if decision.label is None:
        return None
    if policy.keep_defects and decision.label != "ok":
        return "defect"
    low, high = policy.uncertainty_band
    if low <= decision.confidence <= high:
        return "uncertain"
    if (
        policy.keep_disagreements
        and decision.candidate is not None
        and decision.serving is not None
        and decision.candidate.label != decision.serving.label
    ):
        return "disagreement"
    return None


def envelope(
    decision: Decision,
    frame: Frame,
    site: str,
    device: str,
    captured_at: dt.datetime,
    reason: FrameReason,
    jpeg_quality: int = 90,
) -> bytes | None:
    """The frame as the wire's `LFF1` envelope (JPEG plus metadata), or None if not decided."""
    if decision.serving is None or decision.label is None:
        return None
    ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    if not ok:
        return None
    jpeg = encoded.tobytes()
    candidate = decision.candidate
    chosen = candidate if decision.decided_by == "candidate" and candidate else decision.serving
    meta = FrameMeta(
        protocol=1,
        kind="Frame",
        site=site,
        device=device,
        line=decision.line,
        camera=decision.camera,
        frame_id=decision.frame_id[:128],
        captured_at=captured_at,
        reason=reason,
        model=decision.model or decision.serving.model,
        predicted=decision.label,
        confidence=min(1.0, max(0.0, decision.confidence)),
        candidate=candidate.model if candidate else None,
        candidate_predicted=candidate.label if candidate else None,
        boxes=[DetectedBox.model_validate(b.to_json()) for b in chosen.boxes] or None,
        score=chosen.score,
        sha256=hashlib.sha256(jpeg).hexdigest(),
        size=len(jpeg),
    )
    return encode_frame(meta, jpeg)


@dataclass
class SpoolCounters:
    seq: int = 0
    seen: int = 0
    kept: int = 0
    evicted: int = 0
    evicted_bytes: int = 0
    uploaded: int = 0
    uploaded_bytes: int = 0
    day: str = ""
    bytes_today: int = 0
    retired_at: float | None = None
    """Unix time the line stopped being served (its frames still upload); None while served."""


class Spool:
    def __init__(self, folder: Path, policy: TelemetryPolicy, jpeg_quality: int = 90) -> None:
        self.folder = folder
        self.policy = policy
        self.jpeg_quality = jpeg_quality
        folder.mkdir(parents=True, exist_ok=True)
        clean_temps(folder)
        self._counters_path = folder / "counters.json"
        self.counters = self._load_counters()
        self._bytes = sum(p.stat().st_size for p in self._files())
        self._lock = threading.Lock()  # the frame loop adds, the MQTT sender uploads
        self._deleted = False

    @property
    def spooled_bytes(self) -> int:
        return self._bytes

    def consider(
        self,
        decision: Decision,
        frame: Frame,
        site: str,
        device: str,
        captured_at: dt.datetime,
    ) -> str | None:
        """Keep the frame if the policy says so; return the reason it was kept."""
        self.counters.seen += 1
        reason = keep_reason(decision, self.policy)
        if reason is None or decision.serving is None or decision.label is None:
            return None
        payload = envelope(decision, frame, site, device, captured_at, reason, self.jpeg_quality)
        if payload is None:
            return None
        with self._lock:
            self._store(payload)
        return reason

    def next_upload(self, today: dt.date | None = None) -> tuple[Path, bytes] | None:
        """The oldest spooled frame, if today's upload budget still has room for it."""
        with self._lock:
            if self._deleted:
                return None
            self._roll_day(today)
            budget = int(self.policy.daily_upload_budget_mb * MB)
            for path in self._files():
                payload = path.read_bytes()
                if self.counters.bytes_today + len(payload) > budget:
                    return None
                return path, payload
            return None

    def uploaded(self, path: Path, size: int, today: dt.date | None = None) -> None:
        with self._lock:
            if self._deleted:  # the spool went away while the frame was on its way
                return
            self._roll_day(today)
            if path.exists():  # it may have been evicted while it was on its way
                path.unlink()
                self._bytes -= size
            self.counters.uploaded += 1
            self.counters.uploaded_bytes += size
            self.counters.bytes_today += size
            self.flush()

    def pending(self) -> int:
        return len(self._files())

    def mark_retired(self, at: float | None) -> None:
        """Record when the line stopped being served (None: it is served again)."""
        with self._lock:
            if not self._deleted:
                self.counters.retired_at = at
                self.flush()

    def delete(self) -> tuple[int, int]:
        """Remove the spool folder; return the frames and bytes that were still waiting."""
        with self._lock:
            self._deleted = True
            files = self._files()
            left = (len(files), sum(p.stat().st_size for p in files))
            shutil.rmtree(self.folder, ignore_errors=True)
            return left

    def flush(self) -> None:
        write_atomic(self._counters_path, json.dumps(asdict(self.counters)).encode())

    def _store(self, payload: bytes) -> None:
        if self._deleted:
            return
        limit = int(self.policy.spool_mb * MB)
        if len(payload) > limit:
            self.counters.evicted += 1
            self.counters.evicted_bytes += len(payload)
            return
        files = self._files()
        while files and self._bytes + len(payload) > limit:
            oldest = files.pop(0)
            size = oldest.stat().st_size
            oldest.unlink()
            self._bytes -= size
            self.counters.evicted += 1
            self.counters.evicted_bytes += size
        self.counters.seq += 1
        self.counters.kept += 1
        write_atomic(self.folder / f"{self.counters.seq:012d}{SUFFIX}", payload)
        self._bytes += len(payload)
        self.flush()

    def _files(self) -> list[Path]:
        return sorted(self.folder.glob(f"*{SUFFIX}"))

    def _roll_day(self, today: dt.date | None) -> None:
        day = (today or dt.datetime.now(dt.UTC).date()).isoformat()
        if day != self.counters.day:
            self.counters.day = day
            self.counters.bytes_today = 0

    def _load_counters(self) -> SpoolCounters:
        try:
            return SpoolCounters(**json.loads(self._counters_path.read_bytes()))
        except (FileNotFoundError, ValueError, TypeError):
            return SpoolCounters()


def spool_folder(root: Path, line: str) -> Path:
    """`spool/<site>__<line>` under the state directory's spool root."""
    return root / line.replace("/", "__")


def spooled_lines(root: Path) -> dict[str, Path]:
    """The lines that have a spool folder on disk, by line key."""
    if not root.is_dir():
        return {}
    return {p.name.replace("__", "/"): p for p in sorted(root.iterdir()) if p.is_dir()}


def peek(folder: Path) -> tuple[int, float | None]:
    """Frames waiting in a spool folder and its `retired_at`, without opening it as a spool."""
    retired_at = None
    try:
        value = json.loads((folder / "counters.json").read_bytes()).get("retired_at")
        retired_at = float(value) if isinstance(value, int | float) else None
    except (OSError, ValueError, AttributeError):
        pass
    return len(list(folder.glob(f"*{SUFFIX}"))), retired_at
