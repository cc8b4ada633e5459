"""The plan of a fleet change: what base -> head does to every line, device and catalogue entry.

`plan_change()` is pure: two loaded specs (and their validation findings), the revisions they came
from and a clock value in, a frozen `Plan` out. Reading git lives in `reconciler.review.revisions`;
turning a plan into markdown, JSON or text lives in `reconciler.review.render`. Everything is
sorted, so the same two revisions always give the same plan, byte for byte.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel

from linefleet_core.errors import Finding, Severity
from linefleet_core.fleet import Line, Site
from linefleet_core.spec import FleetSpec
from linefleet_core.taxonomy import Mapping as ClassMapping
from linefleet_core.taxonomy import Taxonomy, class_mapping
from reconciler.review import published
from reconciler.review.specdiff import FieldChange, diff, flatten
from reconciler.rules import rollout, windows

HEADER = ("apiVersion", "kind")


class Action(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True)
class RevisionRef:
    ref: str
    sha: str = ""

    @property
    def short(self) -> str:
        return self.sha[:12] if self.sha else self.ref


@dataclass(frozen=True)
class Change:
    """One object (a site, a catalogue entry, the policy) added, removed or changed."""

    kind: str
    key: str
    action: Action
    changes: tuple[FieldChange, ...] = ()


@dataclass(frozen=True)
class LinePlan:
    key: str
    action: Action
    changes: tuple[FieldChange, ...]
    steps: tuple[rollout.Step, ...]
    findings: tuple[Finding, ...]
    verdict: rollout.Verdict
    devices: tuple[str, ...]
    """Edge devices that serve the line (in head, or in base for a removed line)."""


@dataclass(frozen=True)
class DevicePlan:
    key: str
    site: str
    action: Action
    changes: tuple[FieldChange, ...]
    lines: tuple[str, ...]
    """Changed lines the device serves: it receives new desired state for them."""


@dataclass(frozen=True)
class Summary:
    lines_added: int
    lines_changed: int
    lines_removed: int
    devices_affected: int
    violations: int
    rollbacks: int
    errors: int
    """Validation errors in the head revision."""

    @property
    def text(self) -> str:
        out = (
            f"Plan: {self.lines_added} line{_s(self.lines_added)} to add, "
            f"{self.lines_changed} to change, {self.lines_removed} to remove; "
            f"{self.devices_affected} device{_s(self.devices_affected)} affected; "
            f"policy: {self.violations} violation{_s(self.violations)}"
        )
        if self.rollbacks:
            out += f", {self.rollbacks} rollback{_s(self.rollbacks)}"
        if self.errors:
            out += f"; head is invalid: {self.errors} error{_s(self.errors)}"
        return out


@dataclass(frozen=True)
class Plan:
    base: RevisionRef
    head: RevisionRef
    now: dt.datetime
    lines: tuple[LinePlan, ...]
    devices: tuple[DevicePlan, ...]
    sites: tuple[Change, ...]
    catalogue: tuple[Change, ...]
    """Model versions (`surface-classifier@5`) and taxonomy versions (`surface-defects@3`)."""
    settings: tuple[Change, ...]
    """The fleet policy."""
    catalogue_violations: tuple[Finding, ...] = field(default=())
    """Policy violations outside lines: a published model version changed in place."""
    validation: tuple[Finding, ...] = field(default=())
    """Problems of the head revision itself (schema, references), errors and warnings."""
    base_errors: int = 0

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.validation if f.severity is Severity.ERROR)

    @property
    def violations(self) -> tuple[Finding, ...]:
        """Policy findings that block the merge (warnings, e.g. weak evidence, are shown only)."""
        found = (*(f for line in self.lines for f in line.findings), *self.catalogue_violations)
        return tuple(f for f in found if f.severity is Severity.ERROR)

    @property
    def ok(self) -> bool:
        """Head is valid and the change keeps the rollout policy: safe to merge."""
        return not self.errors and not self.violations

    @property
    def empty(self) -> bool:
        return not (self.lines or self.devices or self.sites or self.catalogue or self.settings)

    @property
    def summary(self) -> Summary:
        def count(action: Action) -> int:
            return sum(1 for line in self.lines if line.action is action)

        return Summary(
            lines_added=count(Action.CREATE),
            lines_changed=count(Action.UPDATE),
            lines_removed=count(Action.DELETE),
            devices_affected=len(self.devices),
            violations=sum(
                1 for line in self.lines if any(f.severity is Severity.ERROR for f in line.findings)
            )
            + sum(1 for f in self.catalogue_violations if f.severity is Severity.ERROR),
            rollbacks=sum(1 for line in self.lines if line.verdict is rollout.Verdict.ROLLBACK),
            errors=len(self.errors),
        )


def plan_change(
    base: FleetSpec,
    head: FleetSpec,
    *,
    now: dt.datetime,
    base_rev: RevisionRef = RevisionRef("base"),
    head_rev: RevisionRef = RevisionRef("head"),
    head_findings: Sequence[Finding] = (),
    base_findings: Sequence[Finding] = (),
) -> Plan:
    """Compare two fleet revisions; judge every changed line by the rollout policy at `now`.

    An object whose file in the head does not load (`FleetSpec.broken`: its error is in
    `head_findings`) is left out: it is not removed, and what it changes cannot be told; a
    head whose fleet/ or taxonomies/ folder was not read at all (a link) shows no change."""
    if "Folder:fleet" in head.broken or "Folder:taxonomies" in head.broken:  # none was read
        head = base
    decisions = rollout.decide(base, head, now)
    lines = tuple(
        _line(base, head, key, decisions[key])
        for key in decisions
        if f"Line:{key}" not in head.broken
    )
    changed_lines = {line.key for line in lines}
    return Plan(
        base=base_rev,
        head=head_rev,
        now=now,
        lines=lines,
        devices=_devices(base, head, changed_lines),
        sites=_readable(
            head, _objects("site", base.sites, head.sites, exclude=("id",), flat=_site_fields)
        ),
        catalogue=_readable(head, _models(base, head) + _taxonomies(base, head)),
        settings=()
        if "Policy:fleet" in head.broken
        else _objects("policy", {"fleet": base.policy}, {"fleet": head.policy}),
        catalogue_violations=tuple(published.check_catalogue(base, head)),
        validation=tuple(sorted(set(head_findings))),
        base_errors=sum(1 for f in base_findings if f.severity is Severity.ERROR),
    )


def _line(base: FleetSpec, head: FleetSpec, key: str, decision: rollout.LineDecision) -> LinePlan:
    before, after = base.lines.get(key), head.lines.get(key)
    exclude = (*HEADER, "id", "site")
    changes = diff(
        flatten(before, exclude) if before else {},
        flatten(after, exclude) if after else {},
        _camera_summaries(before, after),
    )
    if before is not None and after is not None and not changes:
        changes = (FieldChange("cameras", "(order)", "reordered"),)
    if before is None:  # a new line: what it runs, not every default of its telemetry policy
        changes = tuple(c for c in changes if not c.field.startswith("rollout.telemetry."))
    spec, site = (head, after.site) if after else (base, before.site if before else "")
    line_id = key.partition("/")[2]
    devices = sorted(
        d.id
        for d in spec.devices.values()
        if d.site == site and any(s.line == line_id for s in d.serves)
    )
    return LinePlan(
        key=key,
        action=_action(before, after),
        changes=changes if after is not None else (),
        steps=decision.steps,
        findings=decision.findings,
        verdict=decision.verdict,
        devices=tuple(devices),
    )


def _camera_summaries(*lines: Line | None) -> dict[str, str]:
    """`cameras[cam-3]` -> `1920x1080, left side, lighting ring-white`: a camera in a line."""
    out = {}
    for line in lines:
        for cam in line.cameras if line else ():
            res = cam.resolution
            out[f"cameras[{cam.id}]"] = (
                f"{res.width}x{res.height}, {cam.conveyor_side} side, "
                f"lighting {cam.lighting.profile}"
            )
    return out


def _readable(head: FleetSpec, changes: tuple[Change, ...]) -> tuple[Change, ...]:
    """`changes` without those of objects whose head file did not load (a model version by its
    family's file)."""
    kinds = {"site": "Site", "model": "Model", "taxonomy": "Taxonomy"}

    def declared(change: Change) -> str:
        key = change.key.partition("@")[0] if change.kind == "model" else change.key
        return f"{kinds.get(change.kind, change.kind)}:{key}"

    return tuple(c for c in changes if declared(c) not in head.broken)


def _devices(base: FleetSpec, head: FleetSpec, changed_lines: set[str]) -> tuple[DevicePlan, ...]:
    out = []
    for key in sorted(set(base.devices) | set(head.devices)):
        if f"EdgeDevice:{key}" in head.broken:
            continue
        before, after = base.devices.get(key), head.devices.get(key)
        exclude = (*HEADER, "id")
        changes = (
            ()
            if before == after
            else diff(
                flatten(before, exclude) if before else {},
                flatten(after, exclude) if after else {},
            )
        )
        device = after or before
        assert device is not None
        served = {f"{device.site}/{s.line}" for d in (before, after) if d for s in d.serves}
        lines = tuple(sorted(served & changed_lines))
        if changes or lines:
            out.append(
                DevicePlan(
                    key=key,
                    site=device.site,
                    action=_action(before, after),
                    changes=changes if after is not None else (),
                    lines=lines,
                )
            )
    return tuple(out)


def _objects(
    kind: str,
    base: Mapping[str, BaseModel],
    head: Mapping[str, BaseModel],
    exclude: Iterable[str] = (),
    flat: Callable[[BaseModel, tuple[str, ...]], dict[str, str]] = flatten,
) -> tuple[Change, ...]:
    out = []
    skip = (*HEADER, *exclude)
    for key in sorted(set(base) | set(head)):
        before, after = base.get(key), head.get(key)
        if before == after:
            continue
        changes = diff(flat(before, skip) if before else {}, flat(after, skip) if after else {})
        out.append(Change(kind, key, _action(before, after), changes if after else ()))
    return tuple(out)


def _site_fields(site: BaseModel, skip: tuple[str, ...]) -> dict[str, str]:
    """A site's fields, each freeze period named by its reason, its dates as the value.

    `freeze_periods[year-end shutdown]` -> `2026-12-23 to 2027-01-04`: a reviewer reads which
    freeze moved and where to, not `freeze_periods[0].end`. A reason used twice in one site
    is told apart by the start date.
    """
    assert isinstance(site, Site)
    out = flatten(site, (*skip, "freeze_periods"))
    reasons = Counter(p.reason for p in site.freeze_periods)
    for period in site.freeze_periods:
        name = period.reason.replace("[", "(").replace("]", ")")
        if reasons[period.reason] > 1:
            name = f"{name} from {windows.fmt_bound(period.start)}"
        out[f"freeze_periods[{name}]"] = windows.period_dates(period)
    return out


def _models(base: FleetSpec, head: FleetSpec) -> tuple[Change, ...]:
    def versions(spec: FleetSpec) -> dict[str, BaseModel]:
        return {
            f"{family.name}@{mv.version}": mv
            for family in spec.models.values()
            for mv in family.versions
        }

    old, new = versions(base), versions(head)
    out = []
    for change in _objects("model", old, new):
        if change.action is Action.CREATE:
            mv = head.model_version(change.key)
            assert mv is not None
            summary = (
                FieldChange("taxonomy", None, mv.taxonomy),
                FieldChange("opset", None, str(mv.opset)),
                FieldChange("artifact", None, f"sha256:{mv.artifact.sha256[:12]}"),
                FieldChange("evidence for", None, ", ".join(sorted(mv.evaluation)) or "none"),
            )
            change = Change("model", change.key, Action.CREATE, summary)
        out.append(change)
    return tuple(sorted(out, key=lambda c: _version_key(c.key)))


def _taxonomies(base: FleetSpec, head: FleetSpec) -> tuple[Change, ...]:
    out = []
    for change in _objects("taxonomy", base.taxonomies, head.taxonomies):
        tax = head.taxonomies.get(change.key)
        if change.action is Action.CREATE and tax is not None:
            summary = [FieldChange("classes", None, ", ".join(tax.class_ids))]
            previous = head.taxonomies.get(f"{tax.name}@{tax.version - 1}")
            if previous is not None:
                summary.append(FieldChange("migration", None, _migration(previous, tax)))
            change = Change("taxonomy", change.key, Action.CREATE, tuple(summary))
        out.append(change)
    return tuple(sorted(out, key=lambda c: _version_key(c.key)))


def _migration(old: Taxonomy, new: Taxonomy) -> str:
    moves, _ = class_mapping(old, new)
    parts = []
    for move in moves.values():
        if move.kind is ClassMapping.SAME:
            continue
        targets = " | ".join(move.targets) or "(retired)"
        review = ", labels need review" if move.needs_review else ""
        parts.append(f"{move.old} → {targets} ({move.kind.value}{review})")
    added = [c for c in new.class_ids if c not in old.class_ids]
    introduced = {t for m in moves.values() for t in m.targets}
    parts.extend(f"+ {c} (added)" for c in added if c not in introduced)
    return "; ".join(parts) or "classes unchanged"


def _action(before: object | None, after: object | None) -> Action:
    if before is None:
        return Action.CREATE
    if after is None:
        return Action.DELETE
    return Action.UPDATE


def _version_key(ref: str) -> tuple[str, int]:
    name, _, version = ref.partition("@")
    return name, int(version) if version.isdigit() else 0


def _s(n: int) -> str:
    return "" if n == 1 else "s"
