"""Wilson intervals, floors per line and sufficiency (linefleet_core.floors)."""

from __future__ import annotations

import pytest

from linefleet_core import floors
from linefleet_core.catalogue import LineEvidence
from linefleet_core.fleet import Policy, PromotionPolicy


@pytest.mark.parametrize(
    ("count", "of", "low", "high"),
    [
        (0, 10, 0.0, 0.2775),
        (5, 10, 0.2366, 0.7634),
        (10, 10, 0.7225, 1.0),
        (1, 100, 0.0018, 0.0545),
    ],
)
def test_wilson_matches_published_values(count: int, of: int, low: float, high: float) -> None:
    got = floors.wilson(count, of)
    assert got == pytest.approx((low, high), abs=1e-4)


def test_no_frames_is_the_whole_interval() -> None:
    assert floors.wilson(0, 0) == (0.0, 1.0)


def _ev(**kw: object) -> LineEvidence:
    base: dict[str, object] = {"metric": "accuracy", "candidate": 0.9, "holdout_frames": 100}
    return LineEvidence.model_validate({**base, "dataset": "d", **kw})


def test_a_line_overrides_the_fleet_floor_field_by_field() -> None:
    policy = Policy.model_validate(
        {
            "kind": "Policy",
            "floors": {
                "max_escape_rate": 0.05,
                "max_false_reject_rate": 0.1,
                "min_recall": {"crack": 0.8},
                "lines": {"toledo/line-1": {"max_escape_rate": 0.2, "min_recall": {"dent": 0.5}}},
            },
        }
    )
    own = floors.floor_for(policy, "toledo/line-1")
    assert (own.max_escape_rate, own.max_false_reject_rate) == (0.2, 0.1)
    assert own.min_recall == {"crack": 0.8, "dent": 0.5}
    assert floors.floor_for(policy, "toledo/line-2").max_escape_rate == 0.05


def test_floors_are_judged_on_the_bound_not_the_point_estimate() -> None:
    floor = floors.Floor(max_escape_rate=0.1)
    lucky = _ev(escape_rate=floors.rate(0, 5))  # 0 escapes, but only 5 defect frames
    assert floors.breaches(lucky, floor) == [
        "escape rate 0.000 (95% CI 0.000-0.434, 0/5): upper bound above the policy's 0.100"
    ]
    proven = _ev(escape_rate=floors.rate(1, 100))
    assert floors.breaches(proven, floor) == []
    assert floors.breaches(_ev(), floor) == [
        "the evidence has no escape rate; the policy caps it at 0.100"
    ]


def test_a_line_with_few_defects_is_told_how_many_frames_it_needs() -> None:
    promo = PromotionPolicy(max_interval_width=0.2)
    ev = _ev(escape_rate=floors.rate(1, 10), false_reject_rate=floors.rate(2, 200))
    (message,) = floors.shortfalls(ev, promo, holdout_share=0.2)
    need = floors.frames_for_width(floors.rate(1, 10), 0.2)
    lo, hi = floors.wilson(round(0.1 * need), need)
    assert hi - lo <= 0.2
    assert message == (
        f"escape rate interval 0.018-0.404 is 0.386 wide on 10 defect frame(s); the policy "
        f"allows 0.200: needs {need - 10} more defect frame(s) in the holdout (about "
        f"{(need - 10) * 5} more labelled defect frames)"
    )


def test_an_incumbent_scored_zero_is_doubted_and_warned_about() -> None:
    policy = Policy.model_validate({"kind": "Policy"})
    problems, warnings = floors.judge(_ev(incumbent=0.0, incumbent_model="m@1"), policy, "a/b")
    assert problems == []
    assert warnings == [
        "the incumbent scored 0.000: it cannot have been scored properly; the comparison with it "
        "proves nothing, the floors decide"
    ]


def test_a_floor_for_a_line_that_does_not_exist_is_a_located_error() -> None:
    from linefleet_core.validation import check
    from tests.support.minifleet import documents, load_docs

    docs = documents()
    docs["fleet/policy.yaml"]["floors"] = {"lines": {"toledo/lnie-1": {"max_escape_rate": 0.1}}}
    spec, _ = load_docs(docs)
    [finding] = [f for f in check(spec) if f.field.startswith("floors")]
    assert finding.path == "fleet/policy.yaml" and finding.line > 0
    assert finding.render().endswith(
        "floors.lines.toledo/lnie-1: unknown line 'toledo/lnie-1'; did you mean 'toledo/line-1'?"
    )
