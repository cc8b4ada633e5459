"""The PR check's policy on a change (`reconciler.review.policy.check_change`): findings located
in the head files, immutable published versions, the base revision's rules and canary limit."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from typing import Any

import pytest

from reconciler.review import policy
from tests.support.minifleet import (
    IN_FREEZE,
    QUIET,
    documents,
    load_docs,
    placeholder_artifact,
)
from tests.unit.reconciler.docedits import (
    MODELS,
    POLICY,
    Docs,
    canary,
    evidence,
    set_evidence,
    set_rollout,
)

PROMOTE_L1 = set_rollout("toledo/line-1", candidate=canary())


def test_findings_point_at_the_head_line_file() -> None:
    base, _ = load_docs(documents())
    docs = documents()
    set_rollout(
        "toledo/line-1",
        serving="surface-classifier@3",
        candidate=None,
        previous="surface-classifier@2",
    )(docs)
    head, _ = load_docs(docs)
    [finding] = policy.check_change(base, head, QUIET)
    assert finding.path == "fleet/sites/toledo/lines/line-1.yaml"
    assert finding.field == "rollout.serving"
    assert (finding.line, finding.col) == head.located(head.lines["toledo/line-1"]).where(
        ("rollout", "serving")
    )


def test_unchanged_fleet_has_no_findings() -> None:
    base, _ = load_docs(documents())
    head, _ = load_docs(documents())
    assert policy.check_change(base, head, IN_FREEZE) == []


def _version(docs: Docs, version: int) -> dict[str, Any]:
    mv: dict[str, Any] = docs[MODELS]["versions"][version - 1]
    return mv


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda d: _version(d, 2)["artifact"].update(sha256="f" * 64),
            [
                (
                    "versions[1].artifact.sha256",
                    "surface-classifier@2 is published, so its artifact may not change (sha256 "
                    f"{hashlib.sha256(placeholder_artifact(2)).hexdigest()[:12]}…, "
                    f"{len(placeholder_artifact(2))} bytes → sha256 ffffffffffff…, "
                    f"{len(placeholder_artifact(2))} bytes); add it as version 4 instead",
                )
            ],
        ),
        (lambda d: _version(d, 3).update(opset=15), [("versions[2].opset", None)]),
        (
            lambda d: _version(d, 1)["output_classes"].reverse(),
            [("versions[0].output_classes", None)],
        ),
        (lambda d: _version(d, 2)["artifact"].update(url="https://mirror.example/2.onnx"), []),
        (
            lambda d: _version(d, 2)["evaluation"].update(
                {"dresden/line-1": {**evidence(d, 3, "dresden/line-1")}}
            ),
            [],
        ),
    ],
    ids=["artifact swapped", "opset", "class order", "artifact moved", "evidence added"],
)
def test_published_model_versions_are_immutable(
    edit: Callable[[Docs], None], expected: list[tuple[str, str | None]]
) -> None:
    base, _ = load_docs(documents())
    docs = documents()
    edit(docs)
    head, _ = load_docs(docs)

    findings = policy.check_change(base, head, IN_FREEZE)  # a catalogue change has no calendar

    assert [f.field for f in findings] == [field for field, _ in expected]
    for finding, (_, message) in zip(findings, expected, strict=True):
        assert finding.path == MODELS and finding.line > 0 and finding.code == "policy"
        if message is not None:
            assert finding.message == message


def test_raising_the_canary_limit_does_not_let_the_same_change_add_canaries() -> None:
    """Issue 12: the canary limit comes from the base policy."""
    base_docs = documents()
    base_docs[POLICY]["max_canary_lines_per_site"] = 1
    head_docs = copy.deepcopy(base_docs)
    head_docs[POLICY]["max_canary_lines_per_site"] = 5
    PROMOTE_L1(head_docs)
    set_rollout("toledo/line-2", candidate=canary())(head_docs)
    set_evidence("toledo/line-2", candidate=0.99)(head_docs)
    base, _ = load_docs(base_docs)
    head, head_findings = load_docs(head_docs)
    assert not [f for f in head_findings if f.severity == "error"], "head alone is valid"

    findings = policy.check_change(base, head, QUIET)

    limits = [f for f in findings if "lines in canary" in f.message]
    assert limits and all("the policy allows 1" in f.message for f in limits)
    [rules] = [f for f in findings if f.code == "rules"]
    assert rules.severity == "warning" and rules.path == POLICY
    assert "judged by the base revision's rules" in rules.message


def test_a_calendar_change_alone_is_named_as_a_rule_change() -> None:
    base, _ = load_docs(documents())
    docs = documents()
    docs["fleet/sites/toledo/site.yaml"]["freeze_periods"] = []
    head, _ = load_docs(docs)
    [finding] = policy.check_change(base, head, IN_FREEZE)
    assert finding.severity == "warning" and finding.code == "rules"
    assert finding.message.startswith("site toledo: changes freeze_periods")
