"""Health and drift of each line, as a rolling window that each report takes and restarts.

Per line: frames, frames/s, errors, serving latency p50/p95, defect rate (overall and per
class), mean confidence; for a candidate: frames, errors, latency p95, defect rate, and its
agreement with the serving model with a per-class confusion table (serving class → candidate
class → count). Per camera: input statistics of sampled frames, and their drift score against
the serving model's `reference_stats`.

Input statistics (all computed on a grey/colour frame downscaled to at most 160 px wide):
`brightness` = mean grey / 255, `contrast` = std grey / 255, `sharpness` = variance of the
Laplacian of grey / 255², `red_balance` and `blue_balance` = mean red / mean green and
mean blue / mean green. The drift score is the largest relative change over the keys present in
both the current statistics and the reference, min(1, |current - reference| / |reference|) (see
docs/frame-stats.md): 0 means "looks like training", 1 means "some statistic is far off".
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_puller.engine import Decision
from edge_puller.runtime import Frame
from linefleet_core.framestats import STAT_KEYS, drift_score, frame_stats


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


@dataclass
class _Camera:
    frames: int = 0
    """Frames whose input statistics were sampled."""
    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAT_KEYS, 0.0))
    decided: int = 0
    defects: int = 0
    latencies: list[float] = field(default_factory=list)

    def means(self) -> dict[str, float]:
        return {k: v / self.frames for k, v in self.sums.items()} if self.frames else {}


@dataclass
class _Window:
    started: float
    frames: int = 0
    errors: int = 0
    unreadable: int = 0
    latencies: list[float] = field(default_factory=list)
    confidences: float = 0.0
    decided: Counter[str] = field(default_factory=Counter)
    candidate_frames: int = 0
    candidate_errors: int = 0
    candidate_latencies: list[float] = field(default_factory=list)
    candidate_defects: int = 0
    agreements: int = 0
    confusion: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    cameras: defaultdict[str, _Camera] = field(default_factory=lambda: defaultdict(_Camera))


class LineMetrics:
    """Collects one line's decisions; `snapshot()` returns the window and starts a new one."""

    def __init__(self, line: str, stats_every: int = 10) -> None:
        self.line = line
        self.stats_every = stats_every
        self._window = _Window(time.monotonic())
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()  # the frame loop observes, the agent loop snapshots

    def unreadable(self) -> None:
        """A frame that could not be decoded: counted, never decided."""
        with self._lock:
            self._window.unreadable += 1

    def observe(self, decision: Decision, frame: Frame | None = None) -> None:
        stats = None
        # Sampled per camera: a line-wide counter over interleaved cameras would sample one
        # camera only (five cameras, every tenth frame: always the same camera).
        seen = self._seen.get(decision.camera, 0)
        self._seen[decision.camera] = seen + 1
        if frame is not None and seen % self.stats_every == 0:
            stats = frame_stats(frame)
        with self._lock:
            self._observe(decision, stats)

    def _observe(self, decision: Decision, stats: dict[str, float] | None) -> None:
        w = self._window
        w.frames += 1
        if decision.error or decision.serving is None:
            w.errors += 1
        else:
            w.latencies.append(decision.serving.latency_ms)
        if decision.label is not None:
            w.decided[decision.label] += 1
            w.confidences += decision.confidence
        if decision.candidate_error:
            w.candidate_errors += 1
        elif decision.candidate is not None and decision.serving is not None:
            w.candidate_frames += 1
            w.candidate_latencies.append(decision.candidate.latency_ms)
            w.candidate_defects += decision.candidate.label != "ok"
            w.agreements += decision.candidate.label == decision.serving.label
            w.confusion[decision.serving.label][decision.candidate.label] += 1
        camera = w.cameras[decision.camera]
        if decision.label is not None:
            camera.decided += 1
            camera.defects += decision.label != "ok"
        if decision.serving is not None and not decision.error:
            camera.latencies.append(decision.serving.latency_ms)
        if stats is not None:
            camera.frames += 1
            for key, value in stats.items():
                camera.sums[key] += value

    def snapshot(self, reference: dict[str, float]) -> dict[str, Any]:
        """The window as the report's `metrics` (wire `LineMetrics` plus extra fields)."""
        now = time.monotonic()
        with self._lock:
            w, self._window = self._window, _Window(now)
        seconds = max(now - w.started, 1e-9)
        decided = sum(w.decided.values())
        defects = decided - w.decided.get("ok", 0)
        drifts = {cam: drift_score(c.means(), reference) for cam, c in w.cameras.items()}
        cameras = {
            cam: {
                "frames": c.frames,
                "stats": c.means(),
                "drift_score": drifts[cam],
                "decided": c.decided,
                "defects": c.defects,
                "latency_p95_ms": _percentile(c.latencies, 95),
            }
            for cam, c in sorted(w.cameras.items())
        }
        drift = max(drifts.values(), default=0.0)
        tried = w.candidate_frames + w.candidate_errors
        return {
            "window_seconds": round(seconds, 3),
            "frames": w.frames,
            "error_rate": w.errors / w.frames if w.frames else 0.0,
            "unreadable_frames": w.unreadable,
            "latency_p50_ms": _percentile(w.latencies, 50),
            "latency_p95_ms": _percentile(w.latencies, 95),
            "frames_per_second": w.frames / seconds,
            "defect_rate": defects / decided if decided else 0.0,
            "defect_rate_by_class": {
                k: v / decided for k, v in sorted(w.decided.items()) if k != "ok"
            },
            "mean_confidence": w.confidences / decided if decided else 0.0,
            "drift_score": drift,
            "cameras": cameras,
            "candidate_frames": w.candidate_frames,
            "candidate_error_rate": w.candidate_errors / tried if tried else 0.0,
            "candidate_latency_p95_ms": _percentile(w.candidate_latencies, 95),
            "candidate_defect_rate": (
                w.candidate_defects / w.candidate_frames if w.candidate_frames else 0.0
            ),
            "shadow_agreement": w.agreements / w.candidate_frames if w.candidate_frames else None,
            "confusion": {s: dict(sorted(c.items())) for s, c in sorted(w.confusion.items())},
        }
