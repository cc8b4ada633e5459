"""Classification metrics on a holdout: accuracy, macro F1, defect recall, confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

OK = "ok"


@dataclass(frozen=True)
class Scores:
    frames: int
    accuracy: float
    macro_f1: float
    defect_recall: float
    """Share of defect frames (truth is not `ok`) predicted as some defect."""
    confusion: tuple[tuple[int, ...], ...]
    """Rows: truth, columns: prediction, in `classes` order."""

    def metric(self, name: str) -> float:
        value: float = getattr(self, name)
        return value


def score(truth: Sequence[int], predicted: Sequence[int], classes: Sequence[str]) -> Scores:
    k = len(classes)
    confusion = np.zeros((k, k), dtype=np.int64)
    for t, p in zip(truth, predicted, strict=True):
        confusion[t, p] += 1
    n = int(confusion.sum())
    accuracy = float(np.trace(confusion) / n) if n else 0.0
    f1s = []
    for c in range(k):
        tp = confusion[c, c]
        support, predicted_c = confusion[c].sum(), confusion[:, c].sum()
        if support == 0:
            continue
        f1s.append(2 * tp / (support + predicted_c) if support + predicted_c else 0.0)
    ok = list(classes).index(OK) if OK in classes else -1
    defects = [c for c in range(k) if c != ok]
    defect_frames = confusion[defects].sum() if defects else 0
    caught = confusion[np.ix_(defects, defects)].sum() if defects else 0
    return Scores(
        frames=n,
        accuracy=accuracy,
        macro_f1=float(np.mean(f1s)) if f1s else 0.0,
        defect_recall=float(caught / defect_frames) if defect_frames else 1.0,
        confusion=tuple(tuple(int(v) for v in row) for row in confusion),
    )
