"""Active learning: order the labelling queue by how unsure the current model is.

    scores = uncertainty(probabilities, "margin")     # higher = label this first
    order = rank(frame_ids, probabilities, "least-confidence")

- `least-confidence`: 1 - max p;
- `margin`: 1 - (p1 - p2), the gap between the two most likely classes;
- `entropy`: -sum p log p (normalised to [0, 1] by log K).
Ties keep the input order, so the ranking is deterministic.

Rank on the classifier's own probabilities, not on the operating point's. A model exported
with an operating point (`linefleet train --max-escape`: P(ok) multiplied by `ok_scale` and
renormalised, the CNN's `ok_bias` = ln ok_scale likewise) outputs probabilities whose
"uncertain" frames are the ones near the *decision* boundary; with a strong bias
(ok_scale 1e-3 and below is common at a few hundred labels) those are `ok` frames the
classifier is 99.9% sure of, and margin sampling spends its labels on them (measured on the
independent source: 84% of the picked frames `ok`, against 52% in the pool, and accuracy
below random's; docs/trainer.md). `unscale` divides the factor back out first.
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


def unscale(probs: Any, ok: int | None, ok_scale: float) -> Any:
    """The classifier's probabilities from an operating point's: column `ok` divided by
    `ok_scale`, rows renormalised (exact inverse of the export's placement). `ok` None or
    `ok_scale` 1: unchanged."""
    p = np.asarray(probs, dtype=np.float64)
    if ok is None or ok_scale == 1.0:
        return p
    if not (np.isfinite(ok_scale) and ok_scale > 0):
        raise ValueError(f"ok_scale must be a positive number, got {ok_scale}")
    p = p.copy()
    p[:, ok] /= ok_scale
    total = p.sum(axis=1, keepdims=True)
    return np.divide(p, total, out=np.zeros_like(p), where=total > 0)


def rank(
    frames: Sequence[str],
    probs: Any,
    strategy: Strategy,
    ok: int | None = None,
    ok_scale: float = 1.0,
) -> list[tuple[str, float]]:
    """(frame, score), most uncertain first, scored on `unscale(probs, ok, ok_scale)`."""
    scores = uncertainty(unscale(probs, ok, ok_scale), strategy)
    order = sorted(range(len(frames)), key=lambda i: (-scores[i], i))
    return [(frames[i], float(scores[i])) for i in order]


def artifact_operating_point(model: bytes) -> tuple[int | None, float]:
    """(ok column, ok_scale) of a features-backend artifact exported with an operating point:
    its `class_placement` matrix holds ok_scale where the `ok` row meets the `ok` column and
    1 at every other class. (None, 1.0) when there is none (plain argmax, or a CNN, whose
    `ok_bias` is folded into its graph)."""
    import onnx
    from onnx import numpy_helper

    for init in onnx.load_from_string(model).graph.initializer:
        if init.name == "class_placement":
            placement = numpy_helper.to_array(init).astype(np.float64)
            odd = np.argwhere((placement != 0) & (placement != 1))
            if placement.ndim == 2 and len(odd) == 1:
                return int(odd[0][1]), float(placement[tuple(odd[0])])
    return None, 1.0
