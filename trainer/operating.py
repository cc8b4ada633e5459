"""The operating point of the features and blend backends: one bias on log P(ok) for every line.

    point = shared_point(log_p, y, ok, groups, max_escape=0.05)   # out-of-fold log-probabilities
    point.bias, point.escape, point.line_escape, point.line_estimate

The bias is the one nearest 0 on the grid 0, -0.25, ... -8 (`trainer.cnn.operating_bias`'s)
at which the out-of-fold escape rate (defect frames called `ok`, of all defect frames) is at
most `max_escape` over every frame, and each line's *estimated* escape rate is too. A line's
estimate is its own out-of-fold rate shrunk toward the pooled one, as if P defect frames at
the pooled rate had been added to its own (a Beta prior centred on the pool): (escapes +
P * pooled rate) / (defect frames + P), with P = `PRIOR_FRAMES` but never more than the
line's own defect frames, so they always weigh at least half. A line with many defect frames
is judged mostly on its own, and a line's one or two frames over the target (at 160 defect
frames one frame moves its rate by 0.6%) can no longer drive the shared bias a long way when
the other lines are well inside it. The loosening is bounded: a line may pass at most
P x (max_escape - pooled rate) escapes beyond its own share of the target, none while the
pooled rate sits at the target, and never more than twice the target on its own frames.
Lines with fewer than `MIN_LINE_DEFECTS` defect frames are counted in the pool only. The
blend shrinks (`PRIOR_FRAMES`); the features backend binds on each line's own rate (prior 0:
measured, shrinking let its test escapes past the target on more draws). Why this
rule and not the strict per-line one, a cost trade-off or a bias per line: docs/trainer.md
("Operating point").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BIASES = tuple(float(b) for b in np.arange(0.0, -8.01, -0.25))
"""The biases tried on log P(ok), nearest 0 first (the CNN's grid, `operating_bias`)."""
MIN_LINE_DEFECTS = 10
"""Defect frames a line needs for its own escape rate to bind the operating point."""
PRIOR_FRAMES = 100.0
"""Weight of the pooled escape rate in each line's estimate, in defect frames."""


@dataclass(frozen=True)
class SharedPoint:
    bias: float = 0.0
    escape: float | None = None
    """The pooled out-of-fold escape rate at `bias` (None: no point chosen)."""
    line_escape: dict[str, float] = field(default_factory=dict)
    """Per line with at least `MIN_LINE_DEFECTS` defect frames: its own out-of-fold rate."""
    line_estimate: dict[str, float] = field(default_factory=dict)
    """The same lines' rates shrunk toward the pooled one: what the bias holds within target."""
    met: bool = True
    """False when even the last bias tried leaves the pooled or a line's estimate over target."""


def escape_margins(log_p: Any, y: Any, ok: int) -> Any:
    """Per defect frame, log P(ok) minus the best other class: it escapes at bias b when
    margin + b >= 0 (a defect called another defect is not an escape)."""
    log_p = np.asarray(log_p, np.float64)
    defect = np.asarray(y) != ok
    return log_p[defect, ok] - np.delete(log_p[defect], ok, axis=1).max(axis=1)


def shared_point(
    log_p: Any,
    y: Any,
    ok: int,
    groups: Sequence[str] | None,
    max_escape: float | None,
    min_line_defects: int = MIN_LINE_DEFECTS,
    prior: float = PRIOR_FRAMES,
) -> SharedPoint:
    """The shared bias (module docstring) on out-of-fold `log_p` [N, K] with labels `y`, the
    `ok` class index and each frame's line `groups` (None: one pool, no line binds: the CNN's
    own point, `trainer.cnn.operating_bias`); SharedPoint() (bias 0, nothing chosen)
    without `max_escape`, an `ok` class or defect frames."""
    y = np.asarray(y)
    defect = y != ok
    if max_escape is None or ok < 0 or not defect.any():
        return SharedPoint()
    margin = escape_margins(log_p, y, ok)
    lines = np.asarray(groups if groups is not None else [""] * len(y))[defect]
    own = {
        line: lines == line
        for line in sorted(set(lines.tolist()))
        if groups is not None and int((lines == line).sum()) >= min_line_defects
    }

    def at(bias: float) -> tuple[float, dict[str, float], dict[str, float]]:
        escaped = margin + bias >= 0
        pooled = float(escaped.mean())
        raw = {line: float(escaped[m].mean()) for line, m in own.items()}
        shrunk = {}
        for line, m in own.items():
            weight = min(prior, float(m.sum()))  # the line's own frames weigh at least half
            shrunk[line] = (float(escaped[m].sum()) + weight * pooled) / (float(m.sum()) + weight)
        return pooled, raw, shrunk

    for bias in BIASES:
        pooled, raw, shrunk = at(bias)
        if pooled <= max_escape and all(e <= max_escape for e in shrunk.values()):
            return SharedPoint(bias, pooled, raw, shrunk)
    return SharedPoint(bias, pooled, raw, shrunk, met=False)
