"""Current labels and open tasks: a pure fold over the event log.

`replay(events, taxonomies)` walks the events oldest first and returns a `LabelState`;
`fold(state, events, taxonomies)` carries a state on with newer events, so
`fold(replay(log[:k]), log[k:]) == replay(log)` (the label store keeps a checkpoint of the
state and folds only what was appended since: `LabelStore.state()`). The state holds:

- `labels`: every live label by its first event's id, with its current class and taxonomy
  version (after migrations and reviews) and the version it was made under;
- `tasks`: what waits for a human: re-review of a split or deprecated class, the audit of a
  new annotator's first labels, inspector overrides waiting for QA, and field samples (frames
  the edge's model called `ok` confidently, sent for audit) that no label covers yet;
- `samples`: every field sample, by its event id (`trainer/audits.py` estimates escapes).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from linefleet_core.taxonomy import Mapping as Move
from linefleet_core.taxonomy import Taxonomy, class_mapping
from trainer.events import Decision, Event, EventKind

AUDIT_FIRST = 100
"""Each annotator's first this-many annotations are queued for audit."""


class TaskKind(enum.StrEnum):
    REVIEW = "review"  # a taxonomy migration that needs a human decision
    AUDIT = "audit"  # one of a new annotator's first labels
    OVERRIDE = "override"  # an inspector override waiting for QA
    SAMPLE = "sample"  # a field audit sample without a label


@dataclass(frozen=True)
class Label:
    id: int
    """The id of the event that created the label (annotation or confirmed override)."""
    frame: str
    site: str
    line: str
    camera: str
    cls: str | None
    """None while a migration waits for review."""
    taxonomy: str
    made_under: str
    origin: EventKind
    author: str
    pending: int | None = None
    """The migration event waiting for review, if any."""
    audit: Decision | None = None

    @property
    def line_key(self) -> str:
        return f"{self.site}/{self.line}"


@dataclass(frozen=True)
class Task:
    id: int
    """The event to act on: the migration (review), the annotation (audit), the override (qa),
    the sample (label its frame)."""
    kind: TaskKind
    frame: str
    line_key: str
    summary: str
    choices: tuple[str, ...] = ()


@dataclass
class LabelState:
    labels: dict[int, Label] = field(default_factory=dict)
    rejected: dict[int, Label] = field(default_factory=dict)
    overrides: dict[int, Event] = field(default_factory=dict)
    """Overrides still waiting for a QA decision."""
    decided: dict[int, Decision] = field(default_factory=dict)
    """QA decisions by target event id."""
    migrations: dict[int, tuple[int, tuple[str, ...]]] = field(default_factory=dict)
    """Pending migration id -> (label id, the classes a reviewer may choose from)."""
    audit_queue: list[int] = field(default_factory=list)
    annotated: dict[str, int] = field(default_factory=dict)
    """How many annotations each annotator made (the first AUDIT_FIRST are audited)."""
    samples: dict[int, Event] = field(default_factory=dict)
    """Field audit samples from the edge, by event id."""
    last_event: int = 0
    """The newest event folded in (0: none)."""

    def copy(self) -> LabelState:
        """An independent copy (the values are immutable, so copying the containers suffices)."""
        return LabelState(
            labels=dict(self.labels),
            rejected=dict(self.rejected),
            overrides=dict(self.overrides),
            decided=dict(self.decided),
            migrations=dict(self.migrations),
            audit_queue=list(self.audit_queue),
            annotated=dict(self.annotated),
            samples=dict(self.samples),
            last_event=self.last_event,
        )

    def tasks(self) -> list[Task]:
        out: list[Task] = []
        for mig, (label_id, choices) in self.migrations.items():
            label = self.labels[label_id]
            out.append(
                Task(
                    mig,
                    TaskKind.REVIEW,
                    label.frame,
                    label.line_key,
                    f"label {label_id} needs a class of {label.taxonomy}",
                    choices,
                )
            )
        for ann in self.audit_queue:
            if ann in self.decided or ann not in self.labels:
                continue
            label = self.labels[ann]
            out.append(
                Task(
                    ann,
                    TaskKind.AUDIT,
                    label.frame,
                    label.line_key,
                    f"audit {label.author}'s label {label.cls} ({label.taxonomy})",
                )
            )
        for ov in self.overrides.values():
            out.append(
                Task(
                    ov.id,
                    TaskKind.OVERRIDE,
                    ov.frame or "",
                    ov.line_key,
                    f"{ov.actor} overrode {ov.model_version}: {ov.model_said} -> {ov.cls}",
                )
            )
        labelled = {lab.frame for lab in self.labels.values()}
        for ev in self.samples.values():
            if ev.frame is not None and ev.frame not in labelled:
                said = f"{ev.model_version} said {ev.model_said}"
                summary = f"label this {ev.detail} frame from {ev.actor}: {said}"
                out.append(Task(ev.id, TaskKind.SAMPLE, ev.frame, ev.line_key, summary))
        return sorted(out, key=lambda t: t.id)


def replay(events: Iterable[Event], taxonomies: Mapping[str, Taxonomy]) -> LabelState:
    """The state after `events` (the whole log, oldest first)."""
    return fold(LabelState(), events, taxonomies)


def fold(
    state: LabelState, events: Iterable[Event], taxonomies: Mapping[str, Taxonomy]
) -> LabelState:
    """Carry `state` on with `events` newer than its `last_event` (in place; returns it)."""
    for ev in events:
        if ev.id <= state.last_event:
            raise ValueError(f"event {ev.id} is not newer than event {state.last_event}")
        state.last_event = ev.id
        if ev.kind is EventKind.ANNOTATION:
            state.labels[ev.id] = _new_label(ev, EventKind.ANNOTATION, ev.actor)
            state.annotated[ev.actor] = state.annotated.get(ev.actor, 0) + 1
            if state.annotated[ev.actor] <= AUDIT_FIRST:
                state.audit_queue.append(ev.id)
        elif ev.kind is EventKind.OVERRIDE:
            state.overrides[ev.id] = ev
        elif ev.kind is EventKind.SAMPLE:
            state.samples[ev.id] = ev
        elif ev.kind is EventKind.QA and ev.target is not None:
            _qa(state, ev)
        elif ev.kind is EventKind.MIGRATION and ev.target in state.labels:
            _migrate(state, ev, taxonomies)
        elif ev.kind is EventKind.REVIEW and ev.target in state.migrations:
            label_id, _ = state.migrations.pop(ev.target)
            label = state.labels[label_id]
            state.labels[label_id] = replace(label, cls=ev.cls, pending=None)
    return state


def _new_label(ev: Event, origin: EventKind, author: str) -> Label:
    return Label(
        id=ev.id,
        frame=ev.frame or "",
        site=ev.site or "",
        line=ev.line or "",
        camera=ev.camera or "",
        cls=ev.cls,
        taxonomy=ev.taxonomy or "",
        made_under=ev.taxonomy or "",
        origin=origin,
        author=author,
    )


def _qa(state: LabelState, ev: Event) -> None:
    assert ev.target is not None
    decision = Decision(ev.detail or Decision.REJECT)
    state.decided[ev.target] = decision
    override = state.overrides.pop(ev.target, None)
    if override is not None:
        if decision is Decision.CONFIRM:
            state.labels[override.id] = _new_label(override, EventKind.OVERRIDE, override.actor)
        return
    label = state.labels.get(ev.target)
    if label is None:
        return
    if decision is Decision.REJECT:
        state.rejected[label.id] = state.labels.pop(label.id)
        for mig, (label_id, _) in list(state.migrations.items()):
            if label_id == label.id:
                del state.migrations[mig]
    else:
        state.labels[label.id] = replace(label, audit=decision)


def _migrate(state: LabelState, ev: Event, taxonomies: Mapping[str, Taxonomy]) -> None:
    assert ev.target is not None and ev.taxonomy is not None
    label = state.labels[ev.target]
    state.labels[label.id] = replace(label, cls=ev.cls, taxonomy=ev.taxonomy, pending=None)
    if ev.cls is None:
        state.labels[label.id] = replace(state.labels[label.id], pending=ev.id)
        state.migrations[ev.id] = (label.id, review_choices(label, ev, taxonomies))


def review_choices(label: Label, ev: Event, taxonomies: Mapping[str, Taxonomy]) -> tuple[str, ...]:
    """The classes a reviewer may pick: a split's targets, or any class after a deprecation."""
    new = taxonomies.get(ev.taxonomy or "")
    old = taxonomies.get(label.taxonomy)
    if new is None:
        return ()
    if old is not None and label.cls is not None and ev.detail == Move.SPLIT.value:
        moves, _ = class_mapping(old, new)
        if label.cls in moves:
            return moves[label.cls].targets
    return tuple(new.class_ids)
