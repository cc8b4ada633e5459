"""Published model versions are immutable: a change may add evidence, never swap the model.

If `surface-classifier@2` could get a new artifact in place, every line serving it would run a
different network without passing shadow, canary or any evidence check. So once a version
is in the base revision, the fields that define what runs on the edge may not change; a new
model is a new version. Evidence, descriptions and provenance may still be added.
"""

from __future__ import annotations

from collections.abc import Iterator

from linefleet_core.catalogue import ModelVersion
from linefleet_core.errors import Finding
from linefleet_core.spec import FleetSpec

IMMUTABLE = ("taxonomy", "output_classes", "artifact", "input", "opset", "execution_providers")
"""The artifact counts by content (sha256, size): moving it to another URL is fine."""


def check_catalogue(base: FleetSpec, head: FleetSpec) -> list[Finding]:
    """A finding for every defining field of a published model version that head changes."""
    return sorted(_changes(base, head))


def _changes(base: FleetSpec, head: FleetSpec) -> Iterator[Finding]:
    for family in head.models.values():
        published = base.models.get(family.name)
        if published is None:
            continue
        old = {mv.version: mv for mv in published.versions}
        doc = head.located(family)
        newest = max(mv.version for mv in family.versions)
        for i, mv in enumerate(family.versions):
            before = old.get(mv.version)
            if before is None:
                continue
            for name in IMMUTABLE:
                if _value(before, name) != _value(mv, name):
                    at = (
                        ("versions", i, name, "sha256")
                        if name == "artifact"
                        else ("versions", i, name)
                    )
                    yield doc.finding(
                        at,
                        f"{family.name}@{mv.version} is published, so its {name} may not change "
                        f"({_show(before, name)} → {_show(mv, name)}); add it as version "
                        f"{newest + 1} instead",
                        code="policy",
                    )


def _value(mv: ModelVersion, name: str) -> object:
    if name == "artifact":
        return (mv.artifact.sha256, mv.artifact.size)
    return getattr(mv, name)


def _show(mv: ModelVersion, name: str) -> str:
    if name == "artifact":
        return f"sha256 {mv.artifact.sha256[:12]}…, {mv.artifact.size} bytes"
    return str(getattr(mv, name))
