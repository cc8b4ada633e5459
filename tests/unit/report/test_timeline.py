"""Plan-style rollout summaries between two versions of a line file (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from linefleet.report.timeline import rollout_changes

KEY = "toledo/line-3"


def doc(serving: str, candidate: str | None = None, stage: str = "shadow", **extra: Any) -> Any:
    fraction = extra.pop("fraction", 0.1)
    rollout: dict[str, Any] = {"serving": serving, **extra}
    if candidate is not None:
        rollout["candidate"] = {"model": candidate, "stage": stage}
        if stage == "canary":
            rollout["candidate"]["canary_fraction"] = fraction
    return {"kind": "Line", "rollout": rollout}


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (
            doc("surface-classifier@2", "surface-classifier@3"),
            doc("surface-classifier@2", "surface-classifier@3", "canary"),
            ["toledo/line-3: surface-classifier@3 shadow → canary"],
        ),
        (
            doc("surface-classifier@2"),
            doc("surface-classifier@2", "surface-classifier@3"),
            ["toledo/line-3: surface-classifier@3 → shadow (new candidate)"],
        ),
        (
            doc("surface-classifier@2", "surface-classifier@3", "canary"),
            doc("surface-classifier@3", previous="surface-classifier@2"),
            ["toledo/line-3: surface-classifier@3 canary → production (was surface-classifier@2)"],
        ),
        (
            doc("surface-classifier@3", previous="surface-classifier@2"),
            doc("surface-classifier@2", previous="surface-classifier@3"),
            ["toledo/line-3: rolled back surface-classifier@3 → surface-classifier@2"],
        ),
        (
            doc("surface-classifier@2", "surface-classifier@3", "canary"),
            doc("surface-classifier@2"),
            ["toledo/line-3: candidate surface-classifier@3 (canary) withdrawn"],
        ),
        (
            doc("surface-classifier@2", "surface-classifier@3"),
            doc("surface-classifier@2", "surface-classifier@4"),
            ["toledo/line-3: candidate surface-classifier@3 shadow → surface-classifier@4 shadow"],
        ),
        (
            None,
            doc("surface-classifier@2"),
            ["toledo/line-3: line added, serving surface-classifier@2"],
        ),
        (
            doc("surface-classifier@2"),
            None,
            ["toledo/line-3: line removed (was serving surface-classifier@2)"],
        ),
        (doc("surface-classifier@2", name="old"), doc("surface-classifier@2", name="new"), []),
        (
            "not: [a mapping",
            doc("surface-classifier@2"),
            ["toledo/line-3: line added, serving surface-classifier@2"],
        ),
    ],
)
def test_rollout_changes(before: Any, after: Any, expected: list[str]) -> None:
    assert rollout_changes(KEY, before, after) == expected


def test_a_canary_share_change_is_named() -> None:
    before = doc("surface-classifier@2", "surface-classifier@3", "canary", fraction=0.1)
    after = doc("surface-classifier@2", "surface-classifier@3", "canary", fraction=0.25)
    assert rollout_changes(KEY, before, after) == [
        "toledo/line-3: surface-classifier@3 canary share 0.1 → 0.25"
    ]
