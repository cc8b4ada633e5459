"""Checks on a batch of new label events before anything is written (pure).

Collects every problem of the batch, then raises one `PermanentError` listing them, so a bad
import file is fixed in one pass and nothing of it is half-written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from linefleet_core.errors import PermanentError
from linefleet_core.taxonomy import Taxonomy
from trainer.events import LIMITS, Decision, EventKind, NewEvent
from trainer.views import LabelState


class _Frame(Protocol):
    @property
    def sha256(self) -> str: ...


class RefusedEvents(PermanentError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("nothing was written:\n  " + "\n  ".join(problems))
        self.problems = problems


def check_class(taxonomies: Mapping[str, Taxonomy], taxonomy: str | None, cls: str | None) -> str:
    """A problem sentence, or "" when `cls` is a class of taxonomy version `taxonomy`."""
    if not taxonomy:
        return "no taxonomy version given"
    found = taxonomies.get(taxonomy)
    if found is None:
        name = taxonomy.partition("@")[0]
        known = sorted(ref for ref in taxonomies if ref.partition("@")[0] == name)
        hint = f" (known: {', '.join(known)})" if known else " (no such taxonomy in the fleet repo)"
        return f"taxonomy version {taxonomy!r} does not exist{hint}"
    if cls not in found.class_ids:
        return f"unknown class {cls!r} in {taxonomy} (classes: {', '.join(found.class_ids)})"
    return ""


def check_batch(
    batch: Sequence[NewEvent],
    state: LabelState,
    frames: Mapping[str, _Frame],
    taxonomies: Mapping[str, Taxonomy],
) -> None:
    """Raise `RefusedEvents` listing every problem of `batch` against the current `state`."""
    targeted: set[tuple[EventKind, int]] = set()
    problems: list[str] = []
    for i, new in enumerate(batch):
        where = f"event {i + 1} ({new.kind.value})"
        for problem in _check_one(new, state, frames, taxonomies):
            problems.append(f"{where}: {problem}")
        if new.target is not None:
            key = (new.kind, new.target)
            if key in targeted and new.kind in (EventKind.QA, EventKind.REVIEW):
                problems.append(f"{where}: event {new.target} is decided twice in this batch")
            targeted.add(key)
    if problems:
        raise RefusedEvents(problems)


def _check_one(
    new: NewEvent,
    state: LabelState,
    frames: Mapping[str, _Frame],
    taxonomies: Mapping[str, Taxonomy],
) -> list[str]:
    if not new.actor.strip():
        return ["the annotator/inspector/reviewer name is empty"]
    if too_long := _check_text(new):
        return too_long
    if new.kind in (EventKind.ANNOTATION, EventKind.OVERRIDE):
        out = []
        if new.frame not in frames:
            out.append(f"frame {str(new.frame)[:12]} is not in the label store")
        if problem := check_class(taxonomies, new.taxonomy, new.cls):
            out.append(problem)
        return out
    if new.kind is EventKind.SAMPLE:
        return [] if new.frame in frames else [f"frame {str(new.frame)[:12]} is not stored"]
    if new.kind is EventKind.QA:
        return _check_qa(new, state)
    if new.kind is EventKind.REVIEW:
        return _check_review(new, state)
    if new.kind is EventKind.MIGRATION:
        if new.target not in state.labels:
            return [f"label {new.target} does not exist"]
        if new.cls is None:
            return [] if new.taxonomy in taxonomies else [f"unknown taxonomy {new.taxonomy!r}"]
        return [p for p in [check_class(taxonomies, new.taxonomy, new.cls)] if p]
    return [f"unknown event kind {new.kind!r}"]


def _check_text(new: NewEvent) -> list[str]:
    """Text a database would refuse or cut: longer than its column, or with a NUL character."""
    out = []
    for name, limit in LIMITS.items():
        value = getattr(new, name)
        if value is None:
            continue
        if len(value) > limit:
            out.append(f"{name} is {len(value)} characters long (at most {limit})")
        if "\x00" in value:
            out.append(f"{name} contains a NUL character")
    return out


def _check_qa(new: NewEvent, state: LabelState) -> list[str]:
    if new.detail not in (Decision.CONFIRM.value, Decision.REJECT.value):
        return ["a QA decision is confirm or reject"]
    if new.target in state.decided:
        return [f"event {new.target} was already {state.decided[new.target].value}ed"]
    if new.target in state.overrides:
        return []
    if new.target in state.labels and state.labels[new.target].origin is EventKind.ANNOTATION:
        return []
    return [f"event {new.target} is not an override waiting for QA nor an annotation"]


def _check_review(new: NewEvent, state: LabelState) -> list[str]:
    pending = state.migrations.get(new.target or -1)
    if pending is None:
        return [f"task {new.target} is not an open re-review task"]
    _, choices = pending
    if new.cls not in choices:
        return [f"class {new.cls!r} is not a choice for task {new.target} ({', '.join(choices)})"]
    return []
