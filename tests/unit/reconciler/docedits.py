"""Edits of the mini fleet held in memory (`tests.support.minifleet.documents()`), shared by the
tests of the rollout rules (`reconciler.rules`) and of the PR check's policy (`reconciler.review`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.support.minifleet import line_rel

Docs = dict[str, Any]
MODELS = "fleet/models/surface-classifier.yaml"
POLICY = "fleet/policy.yaml"


def rollout(docs: Docs, key: str) -> dict[str, Any]:
    roll: dict[str, Any] = docs[line_rel(key)]["rollout"]
    return roll


def evidence(docs: Docs, version: int, key: str) -> dict[str, Any]:
    ev: dict[str, Any] = docs[MODELS]["versions"][version - 1]["evaluation"][key]
    return ev


def canary(model: str = "surface-classifier@3", fraction: float = 0.1) -> dict[str, Any]:
    return {"model": model, "stage": "canary", "canary_fraction": fraction}


def shadow(model: str = "surface-classifier@3") -> dict[str, Any]:
    return {"model": model, "stage": "shadow"}


def set_rollout(key: str, **changes: Any) -> Callable[[Docs], None]:
    def apply(docs: Docs) -> None:
        roll = rollout(docs, key)
        for name, value in changes.items():
            if value is None:
                roll.pop(name, None)
            else:
                roll[name] = value

    return apply


def chain(*edits: Callable[[Docs], None]) -> Callable[[Docs], None]:
    def apply(docs: Docs) -> None:
        for edit in edits:
            edit(docs)

    return apply


def set_evidence(key: str, **changes: Any) -> Callable[[Docs], None]:
    def apply(docs: Docs) -> None:
        evidence(docs, 3, key).update(changes)

    return apply
