from __future__ import annotations

from linefleet_core.spec import FleetSpec
from tests.support.minifleet import documents, load_docs
from trainer.evidence import FactoryRates, factory_rates
from trainer.promote import CandidateInfo, LineScores, plan_promotion, render_body

CAND = CandidateInfo(
    "surface-classifier", 4, "surface-defects@2", "d" * 64, "run-1", "a" * 64, 1000
)


def _spec() -> FleetSpec:
    spec, _ = load_docs(documents())  # policy: accuracy, tolerance 0.01, min 100 frames
    return spec


def test_each_line_is_proposed_or_left_out_with_its_reason() -> None:
    scores = {
        "toledo/line-1": LineScores(0.95, 0.93, "surface-classifier@2", 200),  # beats
        "toledo/line-2": LineScores(0.925, 0.93, "surface-classifier@2", 200),  # within tolerance
        "dresden/line-1": LineScores(0.99, 0.90, "surface-classifier@2", 200),  # canary elsewhere
        "dresden/line-2": LineScores(0.80, 0.90, "surface-classifier@1", 200),  # worse
    }
    plan = plan_promotion(_spec(), CAND, scores)
    assert [(d.line, d.reason) for d in plan.included] == [
        ("toledo/line-1", "beats surface-classifier@2; shadow"),
        ("toledo/line-2", "matches surface-classifier@2; shadow"),
    ]
    left = {d.line: d.reason for d in plan.left_out}
    assert left == {
        "dresden/line-1": "surface-classifier@3 is in canary there; not replaced",
        "dresden/line-2": "worse than surface-classifier@1: 0.800 < 0.900 - 0.01",
    }
    body = render_body(plan)
    assert (
        "| `toledo/line-2` | 0.925 | 0.930 | `surface-classifier@2` | -0.005 | 200 | - | - | proposed"
        in body
    )
    assert "Left out of this proposal: `dresden/line-1`, `dresden/line-2`" in body
    assert body.endswith("Plan: 2 line(s) to shadow, 2 left out.\n")
    assert plan.branch == "promote/surface-classifier-4"


def test_too_few_holdout_frames_or_none_are_left_out() -> None:
    scores = {"toledo/line-1": LineScores(0.99, 0.5, "surface-classifier@2", 99)}
    plan = plan_promotion(_spec(), CAND, scores)
    assert plan.included == []
    left = {d.line: d.reason for d in plan.left_out}
    assert left["toledo/line-1"] == "only 99 holdout frames (policy needs 100)"
    assert left["toledo/line-2"] == "no holdout frames in the dataset"


def test_lines_on_another_taxonomy_or_a_later_version_are_not_eligible() -> None:
    older = CandidateInfo("surface-classifier", 4, "surface-defects@1", "d", "r", "a" * 64, 1)
    plan = plan_promotion(_spec(), older, {})
    assert [d.line for d in plan.left_out] == ["dresden/line-2"]  # the only line on v1


CLASSES = ("ok", "scratch", "contamination", "spot", "crack")


def _rates(escaped: int, defects: int, rejected: int, oks: int) -> FactoryRates:
    """A confusion matrix with `escaped` of `defects` scratches called ok, `rejected` oks."""
    k = len(CLASSES)
    m = [[0] * k for _ in range(k)]
    m[0][0], m[0][1] = oks - rejected, rejected
    m[1][1], m[1][0] = defects - escaped, escaped
    return factory_rates(m, CLASSES)


def _with_floors(**floors: object) -> FleetSpec:
    docs = documents()
    for doc in docs.values():
        if doc.get("kind") == "Policy":
            doc["floors"] = floors
            doc["promotion"]["max_interval_width"] = 0.5
    spec, findings = load_docs(docs)
    assert not [f for f in findings if f.severity.value == "error"], findings
    return spec


def test_a_model_that_breaks_a_floor_on_a_line_is_not_proposed_there() -> None:
    spec = _with_floors(max_escape_rate=0.2, lines={"toledo/line-2": {"max_escape_rate": 0.7}})
    trained = CandidateInfo(
        "surface-classifier",
        4,
        "surface-defects@2",
        "d" * 64,
        "run-1",
        "a" * 64,
        1000,
        ("toledo/line-1",),
    )
    scores = {
        # beats the incumbent (0.11 vs 0.05), but lets 30 of 60 defects through
        "toledo/line-1": LineScores(
            0.11, 0.05, "surface-classifier@2", 200, _rates(30, 60, 0, 140)
        ),
        "toledo/line-2": LineScores(
            0.95, 0.93, "surface-classifier@2", 200, _rates(30, 60, 0, 140)
        ),
    }
    plan = plan_promotion(spec, trained, scores)
    left = {d.line: d.reason for d in plan.left_out}
    assert left["toledo/line-1"] == (
        "breaks the policy's floors: escape rate 0.500 (95% CI 0.377-0.623, 30/60): upper "
        "bound above the policy's 0.200"
    )
    assert [d.line for d in plan.included] == ["toledo/line-2"]  # the line's own floor is 0.7
    body = render_body(plan)
    assert "- trained on: `toledo/line-1`" in body
    assert "| `toledo/line-2` (not trained on) | 0.950 |" in body
    assert "| 0.500 (0.377-0.623) | 0.000 (0.000-0.027) | proposed" in body
    assert "| `toledo/line-1` | 1.000 (0.973-1.000) | 0.500 (0.377-0.623) |" in body  # ok, scratch
    ev = plan.included[0].evidence
    assert ev is not None and ev.escape_rate is not None and ev.escape_rate.of == 60


def test_recall_floor_and_a_line_with_few_defects_is_told_how_many_labels_it_needs() -> None:
    spec = _with_floors(min_recall={"scratch": 0.5})
    scores = {
        "toledo/line-1": LineScores(0.97, 0.9, "surface-classifier@2", 200, _rates(0, 4, 1, 196)),
        "toledo/line-2": LineScores(0.97, 0.9, "surface-classifier@2", 200, _rates(4, 8, 0, 192)),
    }
    plan = plan_promotion(spec, CAND, scores, holdout_share=0.2)
    left = {d.line: d.reason for d in plan.left_out}
    assert [d.line for d in plan.included] == ["toledo/line-1"]  # 4/4: lower bound 0.510
    assert left["toledo/line-2"].startswith(
        "breaks the policy's floors: recall of `scratch` 0.500 (95% CI 0.215-0.785, 4/8): lower "
        "bound below 0.500"
    )


def test_sufficiency_by_interval_width_names_the_labels_still_needed() -> None:
    spec = _with_floors()
    scores = {
        "toledo/line-1": LineScores(0.97, 0.9, "surface-classifier@2", 200, _rates(0, 3, 1, 196))
    }
    plan = plan_promotion(spec, CAND, scores, holdout_share=0.2)
    left = {d.line: d.reason for d in plan.left_out}
    assert left["toledo/line-1"] == (
        "not enough evidence yet: escape rate interval 0.000-0.561 is 0.561 wide on 3 defect "
        "frame(s); the policy allows 0.500: needs 1 more defect frame(s) in the holdout "
        "(about 5 more labelled defect frames)"
    )


def test_a_candidate_never_replaces_a_better_candidate_in_shadow() -> None:
    scores = {
        "toledo/line-1": LineScores(
            0.80, 0.5, "surface-classifier@2", 200, rival="surface-classifier@3", rival_score=0.87
        ),
        "toledo/line-2": LineScores(
            0.88, 0.5, "surface-classifier@2", 200, rival="surface-classifier@3", rival_score=0.87
        ),
    }
    plan = plan_promotion(_spec(), CAND, scores)
    left = {d.line: d.reason for d in plan.left_out}
    assert left["toledo/line-1"] == (
        "worse than surface-classifier@3, the candidate in shadow there: 0.800 < 0.870 - 0.01; a "
        "candidate never replaces a better one"
    )
    assert "toledo/line-2" in {d.line for d in plan.included}


def test_an_incumbent_scored_zero_is_flagged_in_the_evidence_and_the_body() -> None:
    scores = {
        "toledo/line-1": LineScores(0.9, 0.0, "surface-classifier@2", 200),
        "toledo/line-2": LineScores(
            0.9,
            0.8,
            "surface-classifier@2",
            200,
            incumbent_flag="the holdout has no frames of `crack`",
        ),
    }
    plan = plan_promotion(_spec(), CAND, scores)
    flags = {d.line: d.evidence.incumbent_flag for d in plan.included if d.evidence}
    assert flags == {
        "toledo/line-1": "surface-classifier@2 scored 0.000 on this line's holdout",
        "toledo/line-2": "the holdout has no frames of `crack`",
    }
    body = render_body(plan)
    assert "| 0.000 (flagged) |" in body
    assert "- flagged `toledo/line-1`: surface-classifier@2 scored 0.000" in body
