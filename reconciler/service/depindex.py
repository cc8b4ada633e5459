"""Which fleet objects each device's desired state is compiled from (pure).

A device's document (`reconciler.service.compile.compile_device`) reads: the device itself, its
site (artifact mirror), every line it serves (cameras, rollout, telemetry), each line's
taxonomy version, the catalogue entries of the model versions the lines name (serving,
candidate, previous) and the policy (heartbeat, health gates). `device_deps` names them as
dependency keys:

    EdgeDevice:<id>   Site:<site>   Line:<site>/<line>   Taxonomy:<name>@<version>
    Model:<name>@<version>   Policy

`DependencyIndex` keeps them for a whole fleet at one commit, with each object's file, so an
incremental publish can answer "which devices does this change touch?" without reading the
fleet: `changed_keys` compares the old and new object of each changed file, `dependents` looks
the keys up. Model families count per version, by what compile makes of the version (new
evidence for a line changes no document). The index is JSON on disk between publishes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from linefleet_core.catalogue import ModelFamily
from linefleet_core.fleet import EdgeDevice, Line, Policy, Site
from linefleet_core.refs import line_key
from linefleet_core.spec import FleetSpec
from linefleet_core.taxonomy import Taxonomy
from reconciler.service.compile import CompileError, model_spec

POLICY = "Policy"
FORMAT_VERSION = 1


def object_key(obj: BaseModel) -> str:
    """`Kind:key` of a fleet object, the name its file is indexed under."""
    if isinstance(obj, Site):
        return f"Site:{obj.id}"
    if isinstance(obj, Line):
        return f"Line:{obj.key}"
    if isinstance(obj, EdgeDevice):
        return f"EdgeDevice:{obj.id}"
    if isinstance(obj, ModelFamily):
        return f"Model:{obj.name}"
    if isinstance(obj, Taxonomy):
        return f"Taxonomy:{obj.ref}"
    if isinstance(obj, Policy):
        return POLICY
    raise TypeError(f"not a fleet object: {type(obj).__name__}")


def line_deps(line: Line) -> frozenset[str]:
    """What a line's part of a document is compiled from (besides the policy)."""
    rollout = line.rollout
    models = [rollout.serving, rollout.previous]
    if rollout.candidate is not None:
        models.append(rollout.candidate.model)
    if rollout.novelty is not None:
        models.append(rollout.novelty.ref)
    return frozenset(
        {f"Line:{line.key}", f"Site:{line.site}", f"Taxonomy:{line.taxonomy}"}
        | {f"Model:{ref}" for ref in models if ref}
    )


def device_deps(spec: FleetSpec, device: EdgeDevice) -> frozenset[str]:
    """Every dependency key of `device`'s document in `spec` (a line it serves that `spec`
    lacks still counts: adding it changes the document)."""
    keys = {f"EdgeDevice:{device.id}", f"Site:{device.site}", POLICY}
    for serves in device.serves:
        key = line_key(device.site, serves.line)
        keys.add(f"Line:{key}")
        line = spec.lines.get(key)
        if line is not None:
            keys |= line_deps(line)
    return frozenset(keys)


@dataclass(frozen=True)
class DeviceEntry:
    site: str
    lines: tuple[str, ...]
    """The `site/line` keys the device serves."""


@dataclass(frozen=True)
class LineEntry:
    refs: tuple[str, ...]
    """The line's taxonomy and model keys (`line_deps` without the line and its site)."""
    canary: bool


@dataclass(frozen=True)
class DependencyIndex:
    """Dependencies of every device and line of the fleet at `commit`, and each object's file."""

    commit: str
    paths: dict[str, str]  # object key (`Model:<name>` for a family) -> repository path
    devices: dict[str, DeviceEntry]
    lines: dict[str, LineEntry] = field(default_factory=dict)

    @classmethod
    def build(cls, spec: FleetSpec, commit: str) -> DependencyIndex:
        """The index of a fully loaded fleet."""
        objects: list[BaseModel] = [
            *spec.sites.values(),
            *spec.lines.values(),
            *spec.devices.values(),
            *spec.models.values(),
            *spec.taxonomies.values(),
        ]
        if id(spec.policy) in spec.docs:
            objects.append(spec.policy)
        paths = {object_key(obj): spec.located(obj).path for obj in objects}
        return cls(commit, paths, *entries(spec.devices.values(), spec.lines.values()))

    def deps_of(self, device: str) -> frozenset[str]:
        """`device_deps` of a device, from the index alone."""
        entry = self.devices[device]
        keys = {f"EdgeDevice:{device}", f"Site:{entry.site}", POLICY}
        for key in entry.lines:
            keys.add(f"Line:{key}")
            line = self.lines.get(key)
            if line is not None:
                keys.add(f"Site:{key.split('/')[0]}")
                keys.update(line.refs)
        return frozenset(keys)

    def lines_depending(self, keys: Iterable[str]) -> set[str]:
        """`site/line` keys of the lines whose `line_deps` meet `keys`."""
        wanted = set(keys)
        sites = {k[5:] for k in wanted if k.startswith("Site:")}
        return {
            k
            for k, e in self.lines.items()
            if f"Line:{k}" in wanted or k.split("/")[0] in sites or not wanted.isdisjoint(e.refs)
        }

    def dependents(self, keys: Iterable[str]) -> set[str]:
        """Ids of the devices whose documents depend on any of `keys`."""
        wanted = set(keys)
        if POLICY in wanted:
            return set(self.devices)
        lines = self.lines_depending(wanted) | {k[5:] for k in wanted if k.startswith("Line:")}
        sites = {k[5:] for k in wanted if k.startswith("Site:")}
        return {
            d
            for d, e in self.devices.items()
            if e.site in sites or f"EdgeDevice:{d}" in wanted or not lines.isdisjoint(e.lines)
        }

    def serving(self, line_keys: Iterable[str]) -> set[str]:
        """Ids of the devices that serve any of the lines `line_keys`."""
        wanted = set(line_keys)
        return {d for d, e in self.devices.items() if not wanted.isdisjoint(e.lines)}

    def to_json(self) -> bytes:
        """Compact: a line or device file where `placement` puts it is not written (every
        line and device has an entry, so its key is known); the other paths are."""
        usual = self._usual_paths()
        doc = {
            "format_version": FORMAT_VERSION,
            "commit": self.commit,
            "paths": {k: p for k, p in sorted(self.paths.items()) if usual.get(k) != p},
            "devices": {d: [e.site, list(e.lines)] for d, e in sorted(self.devices.items())},
            "lines": {k: [list(e.refs), e.canary] for k, e in sorted(self.lines.items())},
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> DependencyIndex | None:
        """The index, or None when `raw` is not one this version writes."""
        try:
            doc: Any = json.loads(raw)
            if doc.get("format_version") != FORMAT_VERSION:
                return None
            index = cls(
                str(doc["commit"]),
                {},
                {
                    str(d): DeviceEntry(str(site), tuple(lines))
                    for d, (site, lines) in doc["devices"].items()
                },
                {str(k): LineEntry(tuple(refs), bool(c)) for k, (refs, c) in doc["lines"].items()},
            )
            index.paths.update(index._usual_paths())
            index.paths.update({str(k): str(v) for k, v in doc["paths"].items()})
            return index
        except (ValueError, TypeError, KeyError, AttributeError):
            return None

    def _usual_paths(self) -> dict[str, str]:
        """Where `placement` puts each line and device of the index (`usual_path`)."""
        out = {
            f"EdgeDevice:{d}": f"fleet/sites/{e.site}/devices/{d}.yaml"
            for d, e in self.devices.items()
        }
        for key in self.lines:
            site, _, line = key.partition("/")
            out[f"Line:{key}"] = f"fleet/sites/{site}/lines/{line}.yaml"
        return out


def usual_path(key: str, site: str | None = None) -> str | None:
    """Where `linefleet_core.placement` puts the object `key` (a device: of `site`) as a
    `.yaml` file."""
    kind, _, name = key.partition(":")
    if kind == "Site":
        return f"fleet/sites/{name}/site.yaml"
    if kind == "Line":
        site, _, line = name.partition("/")
        return f"fleet/sites/{site}/lines/{line}.yaml"
    if kind == "EdgeDevice":
        return None if site is None else f"fleet/sites/{site}/devices/{name}.yaml"
    if kind == "Model":
        return f"fleet/models/{name}.yaml"
    if kind == "Taxonomy":
        family, _, version = name.partition("@")
        return f"taxonomies/{family}/v{version}.yaml"
    return None


def entries(
    devices: Iterable[EdgeDevice], lines: Iterable[Line]
) -> tuple[dict[str, DeviceEntry], dict[str, LineEntry]]:
    """Index entries of `devices` and `lines`."""
    return (
        {
            d.id: DeviceEntry(d.site, tuple(line_key(d.site, s.line) for s in d.serves))
            for d in devices
        },
        {
            line.key: LineEntry(
                tuple(sorted(line_deps(line) - {f"Line:{line.key}", f"Site:{line.site}"})),
                line.rollout.candidate is not None and line.rollout.candidate.stage == "canary",
            )
            for line in lines
        },
    )


def changed_keys(old: BaseModel | None, new: BaseModel | None) -> set[str]:
    """Dependency keys whose compiled meaning differs between two versions of one file's
    object (None: the file, or its object, is not there)."""
    if old is not None and new is not None and old == new:
        return set()
    families = [m for m in (old, new) if isinstance(m, ModelFamily)]
    others = [o for o in (old, new) if o is not None and not isinstance(o, ModelFamily)]
    out = {object_key(o) for o in others}
    if families:
        before = _compiled_versions(old) if isinstance(old, ModelFamily) else {}
        after = _compiled_versions(new) if isinstance(new, ModelFamily) else {}
        out |= {
            f"Model:{ref}"
            for ref in before.keys() | after.keys()
            if before.get(ref) != after.get(ref)
        }
    return out


def _compiled_versions(family: ModelFamily) -> Mapping[str, object]:
    """Each version as a document would carry it (relative artifact URLs kept relative)."""
    out: dict[str, object] = {}
    for mv in family.versions:
        ref = f"{family.name}@{mv.version}"
        try:
            out[ref] = model_spec(ref, mv, "", None).model_dump(mode="json")
        except CompileError:  # an artifact URL compile refuses: count it as changed
            out[ref] = ("uncompilable", mv.model_dump(mode="json"))
    return out
