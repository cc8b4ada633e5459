"""Factory evidence from a confusion matrix: escapes, false rejects, recall per class (pure).

    rates = factory_rates(scores.confusion, classes)
    rates.escape          # Rate: defect frames called `ok`, of all defect frames (Wilson 95%)
    rates.false_reject    # Rate: `ok` frames called a defect, of all `ok` frames
    rates.recall["dent"]  # Rate: dent frames called dent, of all dent frames

A plant judges a model by what it lets through (escapes) and what it scraps (false rejects),
per line; accuracy alone hides both. Classes without holdout frames have no recall entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from linefleet_core.catalogue import Rate
from linefleet_core.floors import rate
from trainer.metrics import OK


@dataclass(frozen=True)
class FactoryRates:
    escape: Rate
    false_reject: Rate
    recall: dict[str, Rate]
    confusion: tuple[tuple[int, ...], ...]

    def metrics(self, suffix: str = "") -> dict[str, float]:
        """MLflow metrics: rates with their bounds, recall per class."""
        out: dict[str, float] = {}
        for name, r in (("escape_rate", self.escape), ("false_reject_rate", self.false_reject)):
            out[f"{name}{suffix}"] = r.value
            out[f"{name}_low{suffix}"] = r.low
            out[f"{name}_high{suffix}"] = r.high
        for cls, r in self.recall.items():
            out[f"recall_{cls}{suffix}"] = r.value
            out[f"recall_{cls}_low{suffix}"] = r.low
        return out


def factory_rates(confusion: Sequence[Sequence[int]], classes: Sequence[str]) -> FactoryRates:
    ok = list(classes).index(OK) if OK in classes else -1
    k = len(classes)
    defect_rows = [c for c in range(k) if c != ok]
    defects = sum(sum(confusion[c]) for c in defect_rows)
    escaped = sum(confusion[c][ok] for c in defect_rows) if ok >= 0 else 0
    oks = sum(confusion[ok]) if ok >= 0 else 0
    rejected = oks - confusion[ok][ok] if ok >= 0 else 0
    recall = {
        classes[c]: rate(confusion[c][c], sum(confusion[c])) for c in range(k) if sum(confusion[c])
    }
    return FactoryRates(
        escape=rate(escaped, defects),
        false_reject=rate(rejected, oks),
        recall=recall,
        confusion=tuple(tuple(int(v) for v in row) for row in confusion),
    )


def show(r: Rate) -> str:
    """`0.050 (0.014-0.165)`: a rate with its 95% interval, for tables."""
    return f"{r.value:.3f} ({r.low:.3f}-{r.high:.3f})"
