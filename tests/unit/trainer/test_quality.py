from __future__ import annotations

from collections import Counter

import pytest
from sklearn.metrics import cohen_kappa_score

from trainer.events import EventKind, NewEvent
from trainer.quality import DRIFT_WINDOW, cohen_kappa, fleiss_kappa, report
from trainer.store import LabelStore
from trainer.views import replay

# Fleiss (1971) / Wikipedia worked example: 10 subjects, 14 raters, 5 categories -> 0.210
WIKI = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_matches_the_published_example() -> None:
    items = [Counter({str(j): n for j, n in enumerate(row) if n}) for row in WIKI]
    overall, per_class = fleiss_kappa(items)
    assert overall == pytest.approx(0.2099, abs=1e-3)
    # with a constant number of raters, the mean of the per-class kappas weighted by
    # p_j (1 - p_j) equals the overall kappa
    total = sum(sum(r) for r in WIKI)
    p = {str(j): sum(r[j] for r in WIKI) / total for j in range(5)}
    weighted = sum(per_class[k] * p[k] * (1 - p[k]) for k in p) / sum(p[k] * (1 - p[k]) for k in p)
    assert weighted == pytest.approx(overall)


def test_fleiss_needs_two_raters() -> None:
    assert fleiss_kappa([Counter({"ok": 1})]) == (None, {})


@pytest.mark.parametrize(
    "pairs",
    [
        [("ok", "ok"), ("ok", "scratch"), ("scratch", "scratch"), ("dust", "scratch")] * 3,
        [("ok", "ok"), ("scratch", "scratch"), ("dust", "dust")],
        [("ok", "scratch"), ("scratch", "ok")],
    ],
)
def test_cohen_kappa_matches_scikit_learn(pairs: list[tuple[str, str]]) -> None:
    a, b = zip(*pairs, strict=True)
    assert cohen_kappa(pairs) == pytest.approx(cohen_kappa_score(a, b))


def test_cohen_kappa_edge_cases() -> None:
    assert cohen_kappa([]) is None
    assert cohen_kappa([("ok", "ok")] * 3) == 1.0


def test_report_pairs_audits_and_drift(store: LabelStore, frame_ids: list[str]) -> None:
    tax = "surface-defects@1"
    batch = []
    for f in frame_ids:
        batch.append(NewEvent(EventKind.ANNOTATION, "ana", frame=f, cls="ok", taxonomy=tax))
        batch.append(NewEvent(EventKind.ANNOTATION, "bo", frame=f, cls="ok", taxonomy=tax))
    batch.append(NewEvent(EventKind.ANNOTATION, "cy", frame=frame_ids[0], cls="spot", taxonomy=tax))
    store.append(batch)
    rep = report(replay(store.events(), store.taxonomies))
    assert rep.double_labelled == 6
    pairs = {(p.a, p.b): (p.frames, p.kappa) for p in rep.pairs}
    assert pairs[("ana", "bo")] == (6, 1.0)
    assert pairs[("ana", "cy")][0] == 1
    names = {a.name: a for a in rep.annotators}
    assert names["ana"].audit_open == 6 and names["cy"].labels == 1
    assert rep.fleiss is not None and rep.fleiss < 1.0
    assert not any(a.drifting for a in rep.annotators)


def test_an_annotator_whose_interpretation_drifts_is_flagged(
    store: LabelStore, frame_ids: list[str]
) -> None:
    tax = "surface-defects@1"
    batch = []
    # 2 windows of shared frames (frames repeat; each repetition is a fresh judgement)
    for i in range(2 * DRIFT_WINDOW):
        f = frame_ids[i % len(frame_ids)]
        late = i >= DRIFT_WINDOW
        truth = "scratch"
        for ref in ("r1", "r2"):
            batch.append(NewEvent(EventKind.ANNOTATION, ref, frame=f, cls=truth, taxonomy=tax))
        said = "spot" if late else truth
        batch.append(NewEvent(EventKind.ANNOTATION, "dee", frame=f, cls=said, taxonomy=tax))
    store.append(batch)
    rep = report(replay(store.events(), store.taxonomies))
    dee = next(a for a in rep.annotators if a.name == "dee")
    assert dee.agreement_early == 1.0 and dee.agreement_recent == 0.0 and dee.drifting
