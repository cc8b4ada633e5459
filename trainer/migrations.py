"""Taxonomy migrations as label events: plan them (pure), then append them.

When taxonomy version N+1 lands in git, every live label under version N gets one migration
event to N+1: unchanged, renamed and merged classes carry over automatically (the event
records which); split and deprecated classes get an event without a class, which opens a
re-review task. The plan is level-triggered: it looks only at where labels are now, so
running it again after a review carries the reviewed labels forward and does nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping

from linefleet_core.taxonomy import Taxonomy, class_mapping
from trainer.events import EventKind, NewEvent
from trainer.views import LabelState

MIGRATOR = "linefleet-trainer"


def latest(taxonomies: Mapping[str, Taxonomy], name: str) -> Taxonomy | None:
    versions = [t for t in taxonomies.values() if t.name == name]
    return max(versions, key=lambda t: t.version, default=None)


def plan_migrations(
    state: LabelState, taxonomies: Mapping[str, Taxonomy], name: str, upto: int | None = None
) -> list[NewEvent]:
    """Migration events that move every label of taxonomy `name` one version forward.

    Labels waiting for review stay where they are. Only one step per label per plan: run
    `plan` -> `append` until the plan is empty to reach version `upto` (default: latest).
    """
    newest = latest(taxonomies, name)
    if newest is None:
        return []
    top = newest.version if upto is None else upto
    out: list[NewEvent] = []
    for label in state.labels.values():
        tax_name, _, ver = label.taxonomy.partition("@")
        if tax_name != name or label.cls is None or not ver.isdigit() or int(ver) >= top:
            continue
        old = taxonomies.get(label.taxonomy)
        new = taxonomies.get(f"{name}@{int(ver) + 1}")
        if old is None or new is None:
            continue
        moves, problems = class_mapping(old, new)
        move = moves.get(label.cls)
        if problems or move is None:
            continue
        target = None if move.needs_review else move.targets[0]
        out.append(
            NewEvent(
                EventKind.MIGRATION,
                MIGRATOR,
                frame=label.frame,
                cls=target,
                taxonomy=new.ref,
                target=label.id,
                detail=move.kind.value,
            )
        )
    return out
