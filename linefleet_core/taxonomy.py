"""Versioned defect taxonomies and the migrations between consecutive versions.

A taxonomy version lists its classes in model-output order. Every version after the first
says how each class of the previous version maps forward: unchanged classes map to
themselves; `rename` maps automatically; `split` needs a human decision per label;
`merge` maps automatically; `add` introduces a class; `deprecate` retires one (its labels
need review). `class_mapping()` turns that into one table that the validator, the trainer's
re-review tasks and the plan all read.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

from linefleet_core.model import Header, Strict
from linefleet_core.refs import Id

Severity = Literal["none", "minor", "major", "critical"]


class TaxonomyClass(Strict):
    id: Id
    definition: str = Field(min_length=1)
    severity: Severity


class RenameOp(Strict):
    rename: Id
    to: Id


class SplitOp(Strict):
    split: Id
    into: list[Id] = Field(min_length=2)


class MergeOp(Strict):
    merge: list[Id] = Field(min_length=2)
    into: Id


class AddOp(Strict):
    add: Id


class DeprecateOp(Strict):
    deprecate: Id


_OPS = ("rename", "split", "merge", "add", "deprecate")


def _op_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        present = [k for k in _OPS if k in value]
        return present[0] if len(present) == 1 else None
    return next((k for k in _OPS if hasattr(value, k)), None)


MigrationOp = Annotated[
    Annotated[RenameOp, Tag("rename")]
    | Annotated[SplitOp, Tag("split")]
    | Annotated[MergeOp, Tag("merge")]
    | Annotated[AddOp, Tag("add")]
    | Annotated[DeprecateOp, Tag("deprecate")],
    Discriminator(
        _op_tag,
        custom_error_type="migration_op",
        custom_error_message=(
            "each migration step has exactly one of: rename, split, merge, add, deprecate"
        ),
    ),
]


class Taxonomy(Header):
    kind: Literal["Taxonomy"]
    name: Id
    version: int = Field(ge=1)
    description: str = ""
    classes: list[TaxonomyClass] = Field(min_length=2)
    migration: list[MigrationOp] = Field(default_factory=list)
    """How the classes of version `version - 1` map into this version."""

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def class_ids(self) -> list[str]:
        return [c.id for c in self.classes]


class Mapping(enum.StrEnum):
    SAME = "same"  # unchanged: labels carry over as they are
    RENAMED = "renamed"  # automatic, recorded as a migration
    MERGED = "merged"  # automatic, recorded as a migration
    SPLIT = "split"  # needs a human decision between the targets
    DEPRECATED = "deprecated"  # the class is gone: labels need review


@dataclass(frozen=True)
class ClassMove:
    old: str
    kind: Mapping
    targets: tuple[str, ...]

    @property
    def needs_review(self) -> bool:
        return self.kind in (Mapping.SPLIT, Mapping.DEPRECATED)


def class_mapping(old: Taxonomy, new: Taxonomy) -> tuple[dict[str, ClassMove], list[str]]:
    """Map every class of `old` into `new`; return the moves and a list of problems found.

    Problems are plain sentences (the validator locates them); an empty list means the
    migration is well formed: every old class is accounted for and every new class is
    either carried over or introduced by a step.
    """
    problems: list[str] = []
    old_ids, new_ids = set(old.class_ids), set(new.class_ids)
    moves: dict[str, ClassMove] = {}
    introduced: set[str] = set()

    def move(src: str, kind: Mapping, targets: tuple[str, ...]) -> None:
        if src not in old_ids:
            problems.append(f"{src!r} is not a class of {old.ref}")
        elif src in moves:
            problems.append(f"{src!r} is migrated more than once")
        else:
            moves[src] = ClassMove(src, kind, targets)
        for target in targets:
            if target not in new_ids:
                problems.append(f"{target!r} is not a class of {new.ref}")
            introduced.add(target)

    for op in new.migration:
        if isinstance(op, RenameOp):
            move(op.rename, Mapping.RENAMED, (op.to,))
        elif isinstance(op, SplitOp):
            move(op.split, Mapping.SPLIT, tuple(op.into))
        elif isinstance(op, MergeOp):
            for src in op.merge:
                move(src, Mapping.MERGED, (op.into,))
        elif isinstance(op, AddOp):
            if op.add in old_ids:
                problems.append(f"{op.add!r} is added but already exists in {old.ref}")
            if op.add not in new_ids:
                problems.append(f"{op.add!r} is added but is not a class of {new.ref}")
            introduced.add(op.add)
        else:
            move(op.deprecate, Mapping.DEPRECATED, ())
    for cls in old.class_ids:
        if cls in moves:
            if cls in new_ids and moves[cls].kind is not Mapping.MERGED:
                problems.append(f"{cls!r} is migrated but still exists unchanged in {new.ref}")
            continue
        if cls in new_ids:
            moves[cls] = ClassMove(cls, Mapping.SAME, (cls,))
        else:
            problems.append(
                f"{cls!r} of {old.ref} disappears without a migration step "
                "(rename, split, merge or deprecate it)"
            )
    for cls in new.class_ids:
        if cls not in old_ids and cls not in introduced:
            problems.append(
                f"{cls!r} is new in {new.ref} but no migration step introduces it (add it)"
            )
    return moves, problems
