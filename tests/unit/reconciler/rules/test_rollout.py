"""The rollout rules on a change (`reconciler.rules.rollout.decide`): one table row per rule, on
the mini fleet held in memory."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from reconciler.rules.rollout import LineDecision, Move, Verdict, decide
from tests.support.minifleet import (
    IN_FREEZE,
    QUIET,
    documents,
    line_rel,
    load_docs,
)
from tests.unit.reconciler.docedits import (
    MODELS,
    POLICY,
    Docs,
    canary,
    chain,
    set_evidence,
    set_rollout,
    shadow,
)


def hold_during_production(docs: Docs) -> None:
    docs[POLICY]["hold_changes_during_production"] = True


@dataclass
class Case:
    id: str
    key: str
    head: Callable[[Docs], None]
    verdict: Verdict
    moves: list[Move] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    now: dt.datetime = QUIET
    base: Callable[[Docs], None] = lambda docs: None


PROMOTE_L1 = set_rollout("toledo/line-1", candidate=canary())

CASES = [
    Case(
        "shadow to canary with evidence",
        "toledo/line-1",
        PROMOTE_L1,
        Verdict.ALLOWED,
        [Move.TO_CANARY],
    ),
    Case(
        "shadow to canary below tolerance",
        "toledo/line-2",
        set_rollout("toledo/line-2", candidate=canary()),
        Verdict.VIOLATION,
        [Move.TO_CANARY],
        [
            "toledo/line-2: surface-classifier@3 scores accuracy 0.900, below surface-classifier@2's 0.940 minus "
            "the tolerance 0.010 (needs at least 0.930)"
        ],
    ),
    Case(
        "within tolerance is enough",
        "dresden/line-1",
        set_rollout(
            "dresden/line-1",
            serving="surface-classifier@3",
            candidate=None,
            previous="surface-classifier@2",
        ),
        Verdict.ALLOWED,
        [Move.TO_PRODUCTION],
    ),
    Case(
        "shadow straight to production",
        "toledo/line-1",
        set_rollout(
            "toledo/line-1",
            serving="surface-classifier@3",
            candidate=None,
            previous="surface-classifier@2",
        ),
        Verdict.VIOLATION,
        [Move.TO_PRODUCTION],
        [
            "toledo/line-1: surface-classifier@3 goes from shadow straight to production; "
            "promote to canary first"
        ],
    ),
    Case(
        "production without recording previous",
        "dresden/line-1",
        set_rollout("dresden/line-1", serving="surface-classifier@3", candidate=None),
        Verdict.VIOLATION,
        [Move.TO_PRODUCTION],
        [
            "rollout.previous must be surface-classifier@2, the model surface-classifier@3 replaces, so the "
            "edge keeps it for a rollback (found surface-classifier@1)"
        ],
    ),
    Case(
        "production and a new shadow candidate",
        "dresden/line-1",
        set_rollout(
            "dresden/line-1",
            serving="surface-classifier@3",
            previous="surface-classifier@2",
            candidate=shadow("surface-classifier@1"),
        ),
        Verdict.ALLOWED,
        [Move.TO_PRODUCTION, Move.NEW_CANDIDATE],
    ),
    Case(
        "production and a new canary candidate",
        "dresden/line-1",
        set_rollout(
            "dresden/line-1",
            serving="surface-classifier@3",
            previous="surface-classifier@2",
            candidate=canary("surface-classifier@1"),
        ),
        Verdict.VIOLATION,
        [Move.TO_PRODUCTION, Move.NEW_CANDIDATE],
        ["new candidate surface-classifier@1 enters at canary; a new candidate enters at shadow"],
    ),
    Case(
        "new candidate at shadow",
        "dresden/line-2",
        set_rollout("dresden/line-2", candidate=shadow()),
        Verdict.ALLOWED,
        [Move.NEW_CANDIDATE],
    ),
    Case(
        "new candidate straight to canary",
        "dresden/line-2",
        set_rollout("dresden/line-2", candidate=canary()),
        Verdict.VIOLATION,
        [Move.NEW_CANDIDATE],
        [
            "dresden/line-2: new candidate surface-classifier@3 enters at canary; a new candidate enters "
            "at shadow, then is promoted to canary"
        ],
    ),
    Case(
        "replace candidate at canary",
        "toledo/line-1",
        set_rollout("toledo/line-1", candidate=canary("surface-classifier@1")),
        Verdict.VIOLATION,
        [Move.REPLACE_CANDIDATE],
        ["new candidate surface-classifier@1 enters at canary"],
    ),
    Case(
        "serving becomes a model that was no candidate",
        "dresden/line-2",
        chain(
            set_rollout("dresden/line-2", serving="surface-classifier@2"),
            lambda d: d[line_rel("dresden/line-2")].update(taxonomy="surface-defects@2"),
        ),
        Verdict.VIOLATION,
        [Move.REPLACE_SERVING],
        [
            "serving changes surface-classifier@1 → surface-classifier@2, but surface-classifier@2 was not the canary "
            "candidate"
        ],
    ),
    Case(
        "rollback to previous",
        "toledo/line-1",
        chain(
            set_rollout(
                "toledo/line-1", serving="surface-classifier@1", previous=None, candidate=None
            ),
            lambda d: d[line_rel("toledo/line-1")].update(taxonomy="surface-defects@1"),
        ),
        Verdict.ROLLBACK,
        [Move.ROLLBACK, Move.ABORT],
        [],
        IN_FREEZE,
    ),
    Case(
        "rollback keeps working in a freeze",
        "dresden/line-1",
        set_rollout(
            "dresden/line-1", serving="surface-classifier@1", previous=None, candidate=None
        ),
        Verdict.ROLLBACK,
        [Move.ROLLBACK, Move.ABORT],
        now=IN_FREEZE,
    ),
    Case(
        "rollback must not point previous elsewhere",
        "dresden/line-1",
        set_rollout(
            "dresden/line-1", serving="surface-classifier@1", previous="surface-classifier@2"
        ),
        Verdict.VIOLATION,
        [Move.ROLLBACK],
        ["after rolling back to surface-classifier@1, rollout.previous must be removed"],
    ),
    Case(
        "abort in a freeze",
        "toledo/line-2",
        set_rollout("toledo/line-2", candidate=None),
        Verdict.ROLLBACK,
        [Move.ABORT],
        now=IN_FREEZE,
    ),
    Case(
        "canary back to shadow",
        "dresden/line-1",
        set_rollout("dresden/line-1", candidate=shadow()),
        Verdict.ROLLBACK,
        [Move.DEMOTE],
    ),
    Case(
        "smaller canary",
        "dresden/line-1",
        set_rollout("dresden/line-1", candidate=canary(fraction=0.05)),
        Verdict.ROLLBACK,
        [Move.CANARY_DOWN],
    ),
    Case(
        "larger canary",
        "dresden/line-1",
        set_rollout("dresden/line-1", candidate=canary(fraction=0.3)),
        Verdict.ALLOWED,
        [Move.CANARY_UP],
    ),
    Case(
        "no evidence",
        "toledo/line-1",
        chain(PROMOTE_L1, lambda d: d[MODELS]["versions"][2]["evaluation"].pop("toledo/line-1")),
        Verdict.VIOLATION,
        [Move.TO_CANARY],
        [
            "toledo/line-1: no evaluation evidence for surface-classifier@3 on this line; add "
            "evaluation['toledo/line-1'] to version 3 in the model catalogue before promoting to "
            "canary"
        ],
    ),
    Case(
        "evidence in another metric",
        "toledo/line-1",
        chain(PROMOTE_L1, set_evidence("toledo/line-1", metric="macro_f1")),
        Verdict.VIOLATION,
        [Move.TO_CANARY],
        ["the evidence for surface-classifier@3 is in macro_f1; the policy promotes on accuracy"],
    ),
    Case(
        "evidence against another incumbent",
        "toledo/line-1",
        chain(PROMOTE_L1, set_evidence("toledo/line-1", incumbent_model="surface-classifier@1")),
        Verdict.VIOLATION,
        [Move.TO_CANARY],
        [
            "the evidence for surface-classifier@3 compares against surface-classifier@1; the line serves "
            "surface-classifier@2"
        ],
    ),
    Case(
        "too few holdout frames",
        "toledo/line-1",
        chain(PROMOTE_L1, set_evidence("toledo/line-1", holdout_frames=50)),
        Verdict.VIOLATION,
        [Move.TO_CANARY],
        ["uses 50 holdout frames; the policy needs at least 100"],
    ),
    Case(
        "no incumbent score",
        "toledo/line-1",
        chain(PROMOTE_L1, set_evidence("toledo/line-1", incumbent=None)),
        Verdict.VIOLATION,
        [Move.TO_CANARY],
        ["has no incumbent score"],
    ),
    Case(
        "promotion in a freeze",
        "toledo/line-1",
        PROMOTE_L1,
        Verdict.VIOLATION,
        [Move.TO_CANARY],
        [
            "toledo/line-1: no changes during the freeze 'year-end inventory' (2026-12-20 00:00 → "
            "2027-01-04 00:00 America/New_York); only rollbacks and aborts may land now "
            "(Wed 2026-12-23 07:00 at the site)"
        ],
        IN_FREEZE,
    ),
    Case(
        "a change that deletes the active freeze and promotes is judged by the base calendar",
        "toledo/line-1",
        chain(
            lambda d: d["fleet/sites/toledo/site.yaml"].update(freeze_periods=[]),
            PROMOTE_L1,
        ),
        Verdict.VIOLATION,
        [Move.TO_CANARY],
        ["toledo/line-1: no changes during the freeze 'year-end inventory'"],
        IN_FREEZE,
    ),
    Case(
        "a change that lowers the evidence bar and promotes is judged by the base bar",
        "toledo/line-2",
        chain(
            lambda d: d[POLICY].update(promotion={"metric": "accuracy", "tolerance": 0.2}),
            set_rollout("toledo/line-2", candidate=canary()),
        ),
        Verdict.VIOLATION,
        [Move.TO_CANARY],
        ["minus the tolerance"],
    ),
    Case(
        "freeze ends at its end",
        "toledo/line-1",
        PROMOTE_L1,
        Verdict.ALLOWED,
        [Move.TO_CANARY],
        [],
        dt.datetime(2027, 1, 4, 5, 0, tzinfo=dt.UTC),
    ),
    Case(
        "production window open, policy holds",
        "dresden/line-1",
        set_rollout("dresden/line-1", candidate=canary(fraction=0.3)),
        Verdict.VIOLATION,
        [Move.CANARY_UP],
        ["the production window mon,tue,wed,thu,fri,sat 06:00-14:00 (Europe/Berlin) is open"],
        base=hold_during_production,
    ),
    Case(
        "the change that turns the hold off is still held by the base policy",
        "dresden/line-1",
        chain(
            lambda d: d[POLICY].update(hold_changes_during_production=False),
            set_rollout("dresden/line-1", candidate=canary(fraction=0.3)),
        ),
        Verdict.VIOLATION,
        [Move.CANARY_UP],
        ["the policy holds changes during production"],
        base=hold_during_production,
    ),
    Case(
        "production window open, policy does not hold",
        "dresden/line-1",
        set_rollout("dresden/line-1", candidate=canary(fraction=0.3)),
        Verdict.ALLOWED,
        [Move.CANARY_UP],
    ),
    Case(
        "production window closed",
        "dresden/line-1",
        chain(
            hold_during_production, set_rollout("dresden/line-1", candidate=canary(fraction=0.3))
        ),
        Verdict.ALLOWED,
        [Move.CANARY_UP],
        [],
        dt.datetime(2026, 11, 3, 13, 30, tzinfo=dt.UTC),
    ),
    Case(
        "night shift window crosses midnight",
        "toledo/line-1",
        PROMOTE_L1,
        Verdict.VIOLATION,
        [Move.TO_CANARY],
        ["the production window mon,tue,wed,thu,fri 22:00-06:00 (America/New_York) is open"],
        dt.datetime(2026, 11, 7, 8, 0, tzinfo=dt.UTC),
        base=hold_during_production,
    ),  # Sat 03:00 local: Friday's shift
    Case(
        "previous set without a promotion",
        "toledo/line-2",
        set_rollout("toledo/line-2", previous="surface-classifier@1"),
        Verdict.VIOLATION,
        [Move.PREVIOUS],
        ["rollout.previous changes none → surface-classifier@1 without a promotion"],
    ),
    Case(
        "previous forgotten",
        "toledo/line-1",
        set_rollout("toledo/line-1", previous=None),
        Verdict.ALLOWED,
        [Move.PREVIOUS],
    ),
    Case(
        "telemetry change",
        "toledo/line-1",
        set_rollout("toledo/line-1", telemetry={"daily_upload_budget_mb": 80.0}),
        Verdict.ALLOWED,
        [Move.CONFIG],
    ),
    Case(
        "camera change in a freeze",
        "toledo/line-2",
        lambda d: d[line_rel("toledo/line-2")]["cameras"][0]["resolution"].update(width=1280),
        Verdict.VIOLATION,
        [Move.CONFIG],
        ["no changes during the freeze"],
        IN_FREEZE,
    ),
]


def _decide(case: Case) -> LineDecision:
    base_docs = documents()
    case.base(base_docs)
    head_docs = copy.deepcopy(base_docs)
    case.head(head_docs)
    base, _ = load_docs(base_docs)
    head, _ = load_docs(head_docs)
    decisions = decide(base, head, case.now)
    assert list(decisions) == [case.key], "only the edited line changes"
    return decisions[case.key]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rollout_policy(case: Case) -> None:
    decision = _decide(case)
    assert decision.verdict is case.verdict, [f.message for f in decision.findings]
    assert [step.move for step in decision.steps] == case.moves
    messages = [f.message for f in decision.findings]
    for expected in case.messages:
        assert any(expected in m for m in messages), f"{expected!r} not in {messages}"
    for finding in decision.findings:
        assert finding.path == line_rel(case.key)
        assert finding.line > 0
        assert finding.code == "policy"


def test_unchanged_fleet_has_no_decisions() -> None:
    base, _ = load_docs(documents())
    head, _ = load_docs(documents())
    assert decide(base, head, IN_FREEZE) == {}


def test_new_and_removed_lines() -> None:
    base_docs = documents()
    head_docs = copy.deepcopy(base_docs)
    new = copy.deepcopy(head_docs[line_rel("dresden/line-2")])
    new["id"] = "line-3"
    new["rollout"]["candidate"] = canary()
    head_docs[line_rel("dresden/line-3")] = new
    del head_docs[line_rel("toledo/line-2")]
    base, _ = load_docs(base_docs)
    head, _ = load_docs(head_docs)

    decisions = decide(base, head, IN_FREEZE)

    added, removed = decisions["dresden/line-3"], decisions["toledo/line-2"]
    assert [s.move for s in added.steps] == [Move.ADD_LINE, Move.NEW_CANDIDATE]
    assert [f.message for f in added.findings] == [
        "dresden/line-3: new candidate surface-classifier@3 enters at canary; a new candidate enters at "
        "shadow, then is promoted to canary"
    ]
    assert [s.move for s in removed.steps] == [Move.REMOVE_LINE]
    [frozen] = removed.findings  # removing a line is a change too: not during Toledo's freeze
    assert (frozen.path, frozen.line) == (line_rel("toledo/line-2"), 0)
    assert "no changes during the freeze 'year-end inventory'" in frozen.message
