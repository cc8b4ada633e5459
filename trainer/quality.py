"""Annotator quality: agreement on double-labelled frames, audits, interpretation drift.

- Cohen's kappa for every pair of annotators, over the frames both labelled;
- Fleiss' kappa over all double-labelled frames (any number of raters per frame), overall and
  per class (the category-wise kappa);
- the audit queue (each annotator's first `AUDIT_FIRST` labels) and its progress;
- drift: an annotator whose agreement with the other annotators' majority on their recent
  frames fell well below their earlier agreement is flagged.

Only annotations count (overrides are single-rater by nature), compared under the taxonomy
version they are in now (after migrations).
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from trainer.events import EventKind
from trainer.views import Label, LabelState, TaskKind

DRIFT_WINDOW = 20
DRIFT_DROP = 0.15


def cohen_kappa(pairs: Sequence[tuple[str, str]]) -> float | None:
    """Cohen's kappa of two raters; None without pairs; 1.0 when both always agree on one class."""
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(a == b for a, b in pairs) / n
    left, right = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(left[c] * right[c] for c in left) / (n * n)
    if expected >= 1.0:
        return 1.0 if observed >= 1.0 else 0.0
    return (observed - expected) / (1 - expected)


def fleiss_kappa(items: Sequence[Counter[str]]) -> tuple[float | None, dict[str, float]]:
    """Fleiss' kappa (overall, per class) for items rated by two or more raters each.

    Raters per item may vary: each item's agreement is sum n_ij(n_ij - 1) / n_i(n_i - 1).
    """
    rated = [c for c in items if sum(c.values()) >= 2]
    if not rated:
        return None, {}
    total = sum(sum(c.values()) for c in rated)
    classes = sorted({k for c in rated for k in c})
    p = {k: sum(c[k] for c in rated) / total for k in classes}
    p_bar = sum(
        sum(v * (v - 1) for v in c.values()) / (sum(c.values()) * (sum(c.values()) - 1))
        for c in rated
    ) / len(rated)
    p_e = sum(v * v for v in p.values())
    overall = 1.0 if p_e >= 1.0 else (p_bar - p_e) / (1 - p_e)
    per_class: dict[str, float] = {}
    for k in classes:
        disagreement = sum(c[k] * (sum(c.values()) - c[k]) / (sum(c.values()) - 1) for c in rated)
        spread = sum(sum(c.values()) for c in rated) * p[k] * (1 - p[k])
        per_class[k] = 1.0 if spread == 0 else 1 - disagreement / spread
    return overall, per_class


@dataclass(frozen=True)
class PairAgreement:
    a: str
    b: str
    frames: int
    kappa: float | None


@dataclass(frozen=True)
class AnnotatorSummary:
    name: str
    labels: int
    audit_open: int
    audit_rejected: int
    agreement_early: float | None
    agreement_recent: float | None
    drifting: bool


@dataclass
class QualityReport:
    double_labelled: int = 0
    pairs: list[PairAgreement] = field(default_factory=list)
    fleiss: float | None = None
    fleiss_per_class: dict[str, float] = field(default_factory=dict)
    annotators: list[AnnotatorSummary] = field(default_factory=list)


def report(state: LabelState) -> QualityReport:
    by_frame: dict[tuple[str, str], dict[str, Label]] = defaultdict(dict)
    mine: dict[str, list[Label]] = defaultdict(list)
    for lab in sorted(state.labels.values(), key=lambda lab: lab.id):
        if lab.origin is not EventKind.ANNOTATION:
            continue
        mine[lab.author].append(lab)
        if lab.cls is not None:
            by_frame[(lab.frame, lab.taxonomy)][lab.author] = lab
    shared = {k: v for k, v in by_frame.items() if len(v) >= 2}
    out = QualityReport(double_labelled=len(shared))
    names = sorted({n for v in shared.values() for n in v})
    for a, b in itertools.combinations(names, 2):
        pairs = [(v[a].cls or "", v[b].cls or "") for v in shared.values() if a in v and b in v]
        if pairs:
            out.pairs.append(PairAgreement(a, b, len(pairs), cohen_kappa(pairs)))
    counts = [Counter(lab.cls or "" for lab in v.values()) for v in shared.values()]
    out.fleiss, out.fleiss_per_class = fleiss_kappa(counts)
    open_audits = Counter(
        state.labels[t.id].author for t in state.tasks() if t.kind is TaskKind.AUDIT
    )
    rejected = Counter(lab.author for lab in state.rejected.values())
    for name in sorted(set(mine) | set(rejected)):
        early, recent = _agreement_trend(name, mine.get(name, []), shared)
        drifting = early is not None and recent is not None and early - recent > DRIFT_DROP
        out.annotators.append(
            AnnotatorSummary(
                name,
                len(mine.get(name, [])),
                open_audits[name],
                rejected[name],
                early,
                recent,
                drifting,
            )
        )
    return out


def _agreement_trend(
    name: str, labels: list[Label], shared: dict[tuple[str, str], dict[str, Label]]
) -> tuple[float | None, float | None]:
    """Agreement with the others' majority: first `DRIFT_WINDOW` shared frames vs the last."""
    hits: list[bool] = []
    for lab in labels:
        others = shared.get((lab.frame, lab.taxonomy), {})
        votes = Counter(o.cls for n, o in others.items() if n != name).most_common()
        if lab.cls is None or not votes or (len(votes) > 1 and votes[0][1] == votes[1][1]):
            continue
        hits.append(votes[0][0] == lab.cls)
    if len(hits) < 2 * DRIFT_WINDOW:
        return None, None
    early, recent = hits[:DRIFT_WINDOW], hits[-DRIFT_WINDOW:]
    return sum(early) / DRIFT_WINDOW, sum(recent) / DRIFT_WINDOW
