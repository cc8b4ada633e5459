from __future__ import annotations

from linefleet_core.spec import FleetSpec
from tests.support.minifleet import documents, load_docs
from trainer.promote import CandidateInfo, LineScores, plan_promotion, render_body

CAND = CandidateInfo("surface-cnn", 4, "surface-defects@2", "d" * 64, "run-1", "a" * 64, 1000)


def _spec() -> FleetSpec:
    spec, _ = load_docs(documents())  # policy: accuracy, tolerance 0.01, min 100 frames
    return spec


def test_each_line_is_proposed_or_left_out_with_its_reason() -> None:
    scores = {
        "toledo/line-1": LineScores(0.95, 0.93, "surface-cnn@2", 200),  # beats
        "toledo/line-2": LineScores(0.925, 0.93, "surface-cnn@2", 200),  # within tolerance
        "dresden/line-1": LineScores(0.99, 0.90, "surface-cnn@2", 200),  # canary elsewhere
        "dresden/line-2": LineScores(0.80, 0.90, "surface-cnn@1", 200),  # worse
    }
    plan = plan_promotion(_spec(), CAND, scores)
    assert [(d.line, d.reason) for d in plan.included] == [
        ("toledo/line-1", "beats surface-cnn@2; shadow"),
        ("toledo/line-2", "matches surface-cnn@2; shadow"),
    ]
    left = {d.line: d.reason for d in plan.left_out}
    assert left == {
        "dresden/line-1": "surface-cnn@3 is in canary there; not replaced",
        "dresden/line-2": "worse than surface-cnn@1: 0.800 < 0.900 - 0.01",
    }
    body = render_body(plan)
    assert "| `toledo/line-2` | 0.925 | 0.930 | `surface-cnn@2` | -0.005 | 200 | proposed" in body
    assert "Left out of this proposal: `dresden/line-1`, `dresden/line-2`" in body
    assert body.endswith("Plan: 2 line(s) to shadow, 2 left out.\n")
    assert plan.branch == "promote/surface-cnn-4"


def test_too_few_holdout_frames_or_none_are_left_out() -> None:
    scores = {"toledo/line-1": LineScores(0.99, 0.5, "surface-cnn@2", 99)}
    plan = plan_promotion(_spec(), CAND, scores)
    assert plan.included == []
    left = {d.line: d.reason for d in plan.left_out}
    assert left["toledo/line-1"] == "only 99 holdout frames (policy needs 100)"
    assert left["toledo/line-2"] == "no holdout frames in the dataset"


def test_lines_on_another_taxonomy_or_a_later_version_are_not_eligible() -> None:
    older = CandidateInfo("surface-cnn", 4, "surface-defects@1", "d", "r", "a" * 64, 1)
    plan = plan_promotion(_spec(), older, {})
    assert [d.line for d in plan.left_out] == ["dresden/line-2"]  # the only line on v1
