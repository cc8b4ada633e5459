"""Input novelty per frame: how far a frame lies from what is normal for its camera.

Independent of the classifier, so a defect the serving model calls `ok` with confidence can
still be kept (`novel`). Two scorers:

- the line's **novelty model** (desired state `novelty`, a catalogue model of task `anomaly`):
  run on every decided frame through the model contract; its score is the frame's novelty and
  its declared `threshold` decides `novel`;
- with none shipped (or while it is not loaded yet), **frame statistics**: the input statistics
  drift already uses (`linefleet_core.framestats`), kept per camera as a running mean and
  variance; the score is the largest deviation of any statistic in standard deviations, `novel`
  at or above the policy's `novelty_threshold` (default 4). The first `WARMUP` frames of a
  camera only teach it what is normal. This catches gross changes (a lens cap, a lamp out, a
  foreign object filling the view); small surface defects need a novelty model.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

from edge_puller.runtime import Frame, LoadedModel, preprocess
from edge_puller.target import Roi
from linefleet_core.framestats import STAT_KEYS, frame_stats

FRAME_STATS = "frame-stats"
DEFAULT_THRESHOLD = 4.0
WARMUP = 50
"""Frames a camera's running normal learns from before frame-statistics novelty scores."""
MEMORY = 500
"""After the warm-up the running normal forgets with weight 1/MEMORY per frame (a slow change
of light is absorbed over a few hundred frames; a sudden one is novel)."""


@dataclass(frozen=True)
class Novelty:
    score: float
    novel: bool
    by: str
    """The novelty model's ref, or `frame-stats`."""
    ratio: float
    """The score over the threshold that decides `novel` (1 and above: novel)."""


@dataclass
class _Normal:
    """A running mean and variance of each frame statistic of one camera."""

    n: int = 0
    mean: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAT_KEYS, 0.0))
    var: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAT_KEYS, 0.0))

    def score(self, stats: dict[str, float]) -> float | None:
        if self.n < WARMUP:
            return None
        worst = 0.0
        for key in STAT_KEYS:
            # a floor under the deviation: a statistic that never moved must not make noise
            floor = 1e-3 * abs(self.mean[key]) + 1e-9
            std = max(math.sqrt(self.var[key]), floor)
            worst = max(worst, abs(stats[key] - self.mean[key]) / std)
        return worst

    def learn(self, stats: dict[str, float]) -> None:
        self.n += 1
        weight = max(1.0 / self.n, 1.0 / MEMORY)
        for key in STAT_KEYS:
            delta = stats[key] - self.mean[key]
            self.mean[key] += weight * delta
            self.var[key] = (1 - weight) * (self.var[key] + weight * delta * delta)


class NoveltyScorer:
    """Scores frames of one line; frame-statistics state is kept per camera."""

    def __init__(self) -> None:
        self._normals: dict[str, _Normal] = {}
        self._lock = threading.Lock()  # the inspection workers of several cameras share a line

    def score(
        self,
        camera: str,
        frame: Frame,
        model: LoadedModel | None = None,
        roi: Roi | None = None,
        threshold: float | None = None,
    ) -> Novelty | None:
        """The frame's novelty, or None (still warming up, or the model failed on it)."""
        if model is not None:
            try:
                prediction = model.predict(*preprocess(frame, model, roi))
            except Exception:  # a broken frame or model never stops inspection
                return None
            if prediction.score is None or not math.isfinite(prediction.score):
                return None
            limit = float(model.contract.outputs.get("threshold") or 0.0)
            ratio = prediction.score / limit if limit > 0 else float(prediction.label != "ok")
            return Novelty(prediction.score, prediction.label != "ok", model.spec.ref, ratio)
        if roi is not None:
            x, y, w, h = roi
            frame = frame[y : y + h, x : x + w]
        stats = frame_stats(frame)
        limit = DEFAULT_THRESHOLD if threshold is None else threshold
        with self._lock:
            normal = self._normals.setdefault(camera, _Normal())
            value = normal.score(stats)
            normal.learn(stats)
        if value is None:
            return None
        return Novelty(value, value >= limit, FRAME_STATS, value / limit)
