"""Active learning: order the labelling queue by how unsure the current model is.

    scores = uncertainty(probabilities, "margin")     # higher = label this first
    order = rank(frame_ids, probabilities, "least-confidence")

- `least-confidence`: 1 - max p;
- `margin`: 1 - (p1 - p2), the gap between the two most likely classes;
- `entropy`: -sum p log p (normalised to [0, 1] by log K).
Ties keep the input order, so the ranking is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

Strategy = Literal["least-confidence", "margin", "entropy"]
STRATEGIES: tuple[Strategy, ...] = ("least-confidence", "margin", "entropy")


def uncertainty(probs: Any, strategy: Strategy) -> Any:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError("probabilities must be [N, K] with K >= 2")
    if strategy == "least-confidence":
        return 1.0 - p.max(axis=1)
    if strategy == "margin":
        top2 = np.sort(p, axis=1)[:, -2:]
        return 1.0 - (top2[:, 1] - top2[:, 0])
    if strategy == "entropy":
        safe = np.clip(p, 1e-12, 1.0)
        return -(p * np.log(safe)).sum(axis=1) / np.log(p.shape[1])
    raise ValueError(f"unknown strategy {strategy!r}; one of {', '.join(STRATEGIES)}")


def rank(frames: Sequence[str], probs: Any, strategy: Strategy) -> list[tuple[str, float]]:
    """(frame, score), most uncertain first."""
    scores = uncertainty(probs, strategy)
    order = sorted(range(len(frames)), key=lambda i: (-scores[i], i))
    return [(frames[i], float(scores[i])) for i in order]
