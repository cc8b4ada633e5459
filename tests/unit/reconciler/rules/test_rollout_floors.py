"""The rollout rules' promotion bar (`reconciler.rules.rollout`): the policy's floors and sufficiency,
beside "no worse than the incumbent"."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from linefleet_core.errors import Severity
from linefleet_core.floors import rate
from reconciler.review.policy import check_change
from reconciler.rules.rollout import LineDecision, Verdict, decide
from tests.support.minifleet import QUIET, documents, load_docs
from tests.unit.reconciler.docedits import MODELS, POLICY, Docs, canary, evidence, rollout, shadow

KEY = "toledo/line-1"  # surface-classifier@3 in shadow, evidence 0.95 vs 0.93 on 500 frames


def _decide(
    edit: Callable[[Docs], None], key: str = KEY, policy_in_base: bool = True
) -> LineDecision:
    """`edit` applied to the head; the base has the head's policy unless `policy_in_base` is
    False (then the base keeps the fixture's policy, as a PR that changes the policy)."""
    base_docs, head_docs = documents(), documents()
    edit(head_docs)
    if policy_in_base:
        base_docs[POLICY] = copy.deepcopy(head_docs[POLICY])
    base, _ = load_docs(base_docs)
    head, findings = load_docs(head_docs)
    assert not [f for f in findings if f.severity is Severity.ERROR], findings
    return decide(base, head, QUIET)[key]


def _rates(escaped: int, defects: int, rejected: int, oks: int) -> dict[str, Any]:
    return {
        "escape_rate": rate(escaped, defects).model_dump(),
        "false_reject_rate": rate(rejected, oks).model_dump(),
        "recall": {"scratch": rate(defects - escaped, defects).model_dump()},
    }


def _promote_with(floors: dict[str, Any], **ev: Any) -> Callable[[Docs], None]:
    def apply(docs: Docs) -> None:
        docs[POLICY]["floors"] = floors
        evidence(docs, 3, KEY).update(ev)
        rollout(docs, KEY)["candidate"] = canary()

    return apply


def test_a_candidate_better_than_the_incumbent_that_breaks_a_floor_is_refused() -> None:
    # 0.95 vs 0.93 passes "no worse than the incumbent"; 40 of 100 defects escape.
    decision = _decide(_promote_with({"max_escape_rate": 0.1}, **_rates(40, 100, 2, 400)))
    assert decision.verdict is Verdict.VIOLATION
    [finding] = decision.findings
    assert finding.message == (
        "toledo/line-1: surface-classifier@3: escape rate 0.400 (95% CI 0.309-0.498, 40/100): upper "
        "bound above the policy's 0.100"
    )
    assert finding.field == "rollout.candidate.stage"


def test_floors_come_from_the_base_revision_a_pr_cannot_loosen_its_own() -> None:
    strict = {"max_escape_rate": 0.1}
    bad = _rates(40, 100, 2, 400)

    def loosen(docs: Docs) -> None:  # the base has strict floors; the PR drops them
        _promote_with({}, **bad)(docs)

    def base_strict(docs: Docs) -> None:
        docs[POLICY]["floors"] = strict

    base_docs, head_docs = documents(), documents()
    base_strict(base_docs)
    base_strict(head_docs)
    loosen(head_docs)
    base, _ = load_docs(base_docs)
    head, _ = load_docs(head_docs)
    decision = decide(base, head, QUIET)[KEY]
    assert decision.verdict is Verdict.VIOLATION
    assert [f.message for f in decision.findings] == [
        "toledo/line-1: surface-classifier@3: escape rate 0.400 (95% CI 0.309-0.498, 40/100): upper "
        "bound above the policy's 0.100"
    ]
    findings = check_change(base, head, QUIET)
    assert any(f.code == "rules" and "changes the fleet policy" in f.message for f in findings)
    # The same PR against a base without floors passes: the head's floors wait for the merge.
    tighten = _decide(_promote_with(strict, **bad), policy_in_base=False)
    assert tighten.verdict is Verdict.ALLOWED, [f.message for f in tighten.findings]


def test_per_line_floor_recall_floor_and_evidence_without_rates() -> None:
    floors = {
        "max_escape_rate": 0.01,
        "lines": {KEY: {"max_escape_rate": 0.2, "min_recall": {"scratch": 0.5}}},
    }
    ok = _decide(_promote_with(floors, **_rates(3, 100, 2, 400)))
    assert ok.verdict is Verdict.ALLOWED, [f.message for f in ok.findings]
    missing = _decide(_promote_with(floors))
    assert [f.message for f in missing.findings] == [
        "toledo/line-1: surface-classifier@3: the evidence has no escape rate; the policy caps it at "
        "0.200",
        "toledo/line-1: surface-classifier@3: no holdout frames of `scratch`: its recall cannot be "
        "shown to reach the policy's 0.500",
    ]


def test_an_interval_too_wide_is_not_enough_evidence() -> None:
    def edit(docs: Docs) -> None:
        _promote_with({}, **_rates(0, 4, 2, 400))(docs)
        docs[POLICY]["promotion"]["max_interval_width"] = 0.3

    decision = _decide(edit)
    assert [f.message for f in decision.findings] == [
        "toledo/line-1: surface-classifier@3: escape rate interval 0.000-0.490 is 0.490 wide on 4 "
        "defect frame(s); the policy allows 0.300: needs 5 more defect frame(s) in the holdout"
    ]


def test_an_incumbent_scored_zero_is_a_warning_not_a_silent_comparison() -> None:
    decision = _decide(_promote_with({}, incumbent=0.0))
    assert decision.verdict is Verdict.ALLOWED
    [warning] = decision.findings
    assert warning.severity is Severity.WARNING
    assert warning.message == (
        "toledo/line-1: surface-classifier@3: the incumbent scored 0.000: it cannot have been scored "
        "properly; the comparison with it proves nothing, the floors decide"
    )


def test_a_candidate_never_replaces_a_better_candidate() -> None:
    def edit(docs: Docs) -> None:
        newer = copy.deepcopy(
            docs[MODELS]["versions"][2]
        )  # surface-classifier@4 replaces @3 (0.95)
        newer["version"] = 4
        newer["evaluation"] = {KEY: {**evidence(docs, 3, KEY), "candidate": 0.80}}
        docs[MODELS]["versions"].append(newer)
        rollout(docs, KEY)["candidate"] = shadow("surface-classifier@4")

    decision = _decide(edit)
    assert [f.message for f in decision.findings] == [
        "toledo/line-1: surface-classifier@4 (accuracy 0.800) would replace surface-classifier@3, which scores "
        "0.950 on this line: a candidate never replaces a better one"
    ]
