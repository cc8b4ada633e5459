"""Fleet status: desired vs reported per device and line, with one condition per device (pure).

Conditions, first match wins (see `docs/protocol.md` section 6):
Stale (not heard from within 3 heartbeats, or its will says offline) > Failed (error, a failed
line, or the current desired state refused) > Degraded (rolled back, past a health gate, or a
`warning`: it inspects, not quite as declared) >
Progressing (applied content differs from desired) > Synced. A device never heard from is
Unknown. An offline device is never shown as Synced.

Beside the one condition, two separate answers (as Argo CD shows them):
- **sync**: does the device run what git says? Synced, Progressing (converging), OutOfSync
  (git has a change the broker does not: `behind`, from the repository, names the commit),
  Unknown (no report, or the device is stale);
- **health**: are its errors, gates and drift fine? Healthy, Degraded, Failed, Stale, Unknown.
A device OutOfSync is never shown as Synced by its condition either.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from linefleet_core.conditions import Condition, ConditionType, Reason
from linefleet_core.wire import DesiredState, EventType, LineMetrics, LineSpec, LineStatus
from reconciler.service.healthgates import Violation, field_escape_violation, violations
from reconciler.service.observed import DeviceObservation, Observations, Rejection

if TYPE_CHECKING:
    from linefleet_core.catalogue import Rate

RECONCILER_KEYS = (
    "last_applied_commit",
    "last_attempted_commit",
    "stalled_commit",
    "stalled_message",
    "last_error",
)
STALE_HEARTBEATS = 3
NO_DESIRED = "no desired state published for this device"
DEFAULT_HEARTBEAT = 60


class SyncType(enum.StrEnum):
    SYNCED = "Synced"
    PROGRESSING = "Progressing"
    OUT_OF_SYNC = "OutOfSync"
    UNKNOWN = "Unknown"


class HealthType(enum.StrEnum):
    HEALTHY = "Healthy"
    DEGRADED = "Degraded"
    FAILED = "Failed"
    STALE = "Stale"
    UNKNOWN = "Unknown"


@dataclass(frozen=True)
class Assessment:
    """One answer (sync or health) with its reason and message."""

    value: str
    reason: Reason
    message: str = ""


@dataclass(frozen=True)
class LineRow:
    line: str
    desired_serving: str | None
    desired_candidate: str | None
    stage: str | None
    reported: LineStatus | None
    violations: tuple[Violation, ...] = ()

    @property
    def metrics(self) -> LineMetrics | None:
        return None if self.reported is None else self.reported.metrics


@dataclass(frozen=True)
class DeviceStatus:
    site: str
    device: str
    condition: Condition
    desired: DesiredState | None
    observation: DeviceObservation | None
    lines: tuple[LineRow, ...]
    in_fleet: bool | None = True
    """In the fleet repository (`--repo`); without it, True when a desired state is published
    for the device, else None: a report from a device no document names (a device at another
    site's topic, a stranger) may or may not be in the fleet, and is not said to be."""
    sync: Assessment = Assessment(SyncType.UNKNOWN.value, Reason.NOT_COMPUTED)
    health: Assessment = Assessment(HealthType.UNKNOWN.value, Reason.NOT_COMPUTED)

    @property
    def last_seen(self) -> float | None:
        return None if self.observation is None else self.observation.last_seen


@dataclass
class FleetStatus:
    devices: list[DeviceStatus]
    rejections: dict[str, int] = field(default_factory=dict)
    last_rejection: dict[str, str] = field(default_factory=dict)
    reconciler: dict[str, str] = field(default_factory=dict)
    """What `linefleet reconcile` recorded: last applied/attempted/stalled commit, last error."""
    notes: list[str] = field(default_factory=list)
    """What the read could not see (e.g. devices outside the fleet on an exact-topic broker)."""

    def counts(self) -> dict[str, int]:
        found = Counter(d.condition.type.value for d in self.devices)
        return {c.value: found.get(c.value, 0) for c in ConditionType}


def _models(spec: LineSpec) -> set[str]:
    found = {spec.serving.ref}
    found |= {m.ref for m in (spec.candidate, spec.previous) if m is not None}
    return found


def _line_rows(
    desired: DesiredState | None,
    obs: DeviceObservation | None,
    assigned: frozenset[str] | None = None,
    field: Mapping[str, Violation] | None = None,
) -> tuple[list[LineRow], list[Foreign]]:
    """One row per line of the device's desired state, with what it reported for that line.

    A device speaks only for what it was sent: a reported line outside its desired state (or,
    with no desired state read, outside the lines `assigned` to it in the fleet repository),
    or one naming a model that line was not sent, is refused and returned as `Foreign`, never
    shown, judged against gates or turned into a rollback.
    """
    reported = (
        {} if obs is None or obs.reported is None else {ln.line: ln for ln in obs.reported.lines}
    )
    rows, foreign = [], []
    for spec in [] if desired is None else desired.spec.lines:
        got = reported.pop(spec.line, None)
        sent = _models(spec)
        named = [] if got is None else [got.serving, got.candidate, got.previous]
        strange = sorted({m for m in named if m is not None and m not in sent})
        if got is not None and strange:
            foreign.append(Foreign(Rejection.FOREIGN_MODEL, spec.line, ", ".join(strange)))
            got = None
        cand = spec.candidate
        stage = None if cand is None else cand.stage
        broken: list[Violation] = []
        if got is not None and got.metrics is not None:
            broken = violations(got.metrics, spec.health_gates, stage=stage)
        if field and spec.line in field:
            broken.append(field[spec.line])
        rows.append(
            LineRow(
                spec.line,
                spec.serving.ref,
                None if cand is None else cand.ref,
                stage,
                got,
                tuple(broken),
            )
        )
    for key, got in sorted(reported.items()):
        if desired is None and assigned is not None and key in assigned:
            escapes = () if not field or key not in field else (field[key],)
            rows.append(LineRow(key, None, None, got.stage, got, escapes))
        else:
            foreign.append(Foreign(Rejection.FOREIGN_LINE, key, ""))
    return rows, foreign


@dataclass(frozen=True)
class Foreign:
    """A reported line a device was not sent (or a model its line was not sent)."""

    reason: Rejection
    line: str
    models: str

    def detail(self, key: str) -> str:
        where = f"{key}/reported: {self.line}"
        if self.reason is Rejection.FOREIGN_LINE:
            return f"{where}: line not in the device's desired state"
        return f"{where}: model(s) {self.models} not sent to this line"


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def condition(
    desired: DesiredState | None,
    obs: DeviceObservation | None,
    rows: list[LineRow],
    now: float,
) -> Condition:
    heartbeat = DEFAULT_HEARTBEAT if desired is None else desired.spec.heartbeat_seconds
    window = STALE_HEARTBEATS * heartbeat
    if obs is None or obs.last_seen is None:
        return _unreported(obs, "no report from the device yet")
    age = now - obs.last_seen
    later = refused_since(obs)
    if obs.online is False:
        return Condition(
            ConditionType.STALE, Reason.OFFLINE, f"offline; last seen {_ago(age)} ago{later}"
        )
    if age > window:
        return Condition(
            ConditionType.STALE,
            Reason.HEARTBEAT_MISSED,
            f"last seen {_ago(age)} ago (window {window}s){later}",
        )
    rep = obs.reported
    if rep is None:
        return _unreported(obs, "online but no reported state")
    if rep.error:
        return Condition(ConditionType.FAILED, Reason.DEVICE_ERROR, rep.error)
    failed = [row.line for row in rows if row.reported and row.reported.phase == "failed"]
    if failed:
        return Condition(ConditionType.FAILED, Reason.LINE_FAILED, f"failed: {', '.join(failed)}")
    if desired is not None:
        refused = [
            e
            for e in obs.events
            if e.type == EventType.REFUSED_DOCUMENT and e.generation == desired.generation
        ]
        held = rep.desired
        if refused and (held is None or held.content_hash != desired.content_hash):
            last = refused[-1]
            why = last.reason or last.message
            return Condition(
                ConditionType.FAILED,
                Reason.REFUSED_DOCUMENT,
                f"refused generation {last.generation}: {why}",
            )
    diverged = [
        f"{row.line} serves {row.reported.serving}, git says {row.desired_serving}"
        for row in rows
        if row.reported and row.reported.phase == "rolled_back" and _diverges(row)
    ]
    if diverged:
        return Condition(
            ConditionType.DEGRADED,
            Reason.ROLLED_BACK_BY_HAND,
            f"rolled back on the device, diverges from git: {'; '.join(diverged)}",
        )
    rolled = [row.line for row in rows if row.reported and row.reported.phase == "rolled_back"]
    if rolled:
        return Condition(
            ConditionType.DEGRADED, Reason.ROLLED_BACK, f"rolled back: {', '.join(rolled)}"
        )
    broken = [f"{row.line} {v.render()}" for row in rows for v in row.violations]
    if broken:
        return Condition(ConditionType.DEGRADED, Reason.HEALTH_GATE, "; ".join(broken))
    if rep.warning:
        return Condition(ConditionType.DEGRADED, Reason.DEVICE_WARNING, rep.warning)
    if desired is None:
        return Condition(ConditionType.PROGRESSING, Reason.NO_DESIRED_STATE, NO_DESIRED)
    applied = rep.applied
    if applied is None or applied.content_hash != desired.content_hash:
        have = "nothing" if applied is None else f"generation {applied.generation}"
        return Condition(
            ConditionType.PROGRESSING,
            Reason.CONVERGING,
            f"runs {have}, desired generation {desired.generation}",
        )
    return Condition(
        ConditionType.SYNCED, Reason.APPLIED, f"runs generation {applied.generation} as desired"
    )


def refused_text(obs: DeviceObservation) -> str:
    """The device's last refused message: topic, reason and what was wrong (field, why)."""
    got = obs.refused
    return "" if got is None else f"{got.topic}: {got.reason.value}: {got.detail}"


def refused_since(obs: DeviceObservation) -> str:
    """A note on a Stale device whose last refused message came after the last one accepted
    (its reports arrive but are refused: e.g. an agent speaking another protocol)."""
    if obs.refused is None or obs.refused_at is None or obs.last_seen is None:
        return ""
    if obs.refused_at <= obs.last_seen:
        return ""
    return f"; messages on its topics since were refused, the last: {refused_text(obs)}"


def _unreported(obs: DeviceObservation | None, message: str) -> Condition:
    """Unknown: no report accepted; the reason says whether one was refused, and why."""
    if obs is None or obs.refused is None:
        return Condition(ConditionType.UNKNOWN, Reason.NEVER_REPORTED, message)
    return Condition(
        ConditionType.UNKNOWN,
        Reason.REPORT_REFUSED,
        f"no report accepted; the last message on its topics was refused: {refused_text(obs)}",
    )


def sync(
    desired: DesiredState | None, obs: DeviceObservation | None, cond: Condition, behind: str
) -> Assessment:
    """Does the device run what git says? (`behind`: why git is ahead of the broker.)"""
    if behind:
        return Assessment(SyncType.OUT_OF_SYNC.value, Reason.GIT_AHEAD, behind)
    if cond.type is ConditionType.STALE:
        return Assessment(SyncType.UNKNOWN.value, Reason.STALE, cond.message)
    rep = None if obs is None else obs.reported
    if desired is None:
        return Assessment(SyncType.UNKNOWN.value, Reason.NO_DESIRED_STATE, NO_DESIRED)
    if rep is None:
        unreported = _unreported(obs, "no report from the device yet")
        return Assessment(SyncType.UNKNOWN.value, unreported.reason, unreported.message)
    applied = rep.applied
    if applied is None or applied.content_hash != desired.content_hash:
        have = "nothing" if applied is None else f"generation {applied.generation}"
        return Assessment(
            SyncType.PROGRESSING.value,
            Reason.CONVERGING,
            f"runs {have}, desired generation {desired.generation}",
        )
    return Assessment(
        SyncType.SYNCED.value, Reason.APPLIED, f"runs generation {applied.generation}"
    )


_HEALTH = {
    ConditionType.STALE: HealthType.STALE,
    ConditionType.FAILED: HealthType.FAILED,
    ConditionType.DEGRADED: HealthType.DEGRADED,
    ConditionType.UNKNOWN: HealthType.UNKNOWN,
}


def health(cond: Condition) -> Assessment:
    """Are the device's errors, gates and drift fine? (The condition's health part.)"""
    kind = _HEALTH.get(cond.type)
    if kind is None:
        return Assessment(
            HealthType.HEALTHY.value, Reason.WITHIN_GATES, "no error, every gate holds"
        )
    return Assessment(kind.value, cond.reason, cond.message)


def _diverges(row: LineRow) -> bool:
    """The device serves another model than git says (an operator's rollback by hand)."""
    reported = row.reported
    return (
        reported is not None
        and reported.serving is not None
        and row.desired_serving is not None
        and reported.serving != row.desired_serving
    )


def fleet_status(
    desired: Mapping[str, DesiredState],
    observations: Observations,
    now: float | None = None,
    fleet: set[str] | None = None,
    assigned: Mapping[str, frozenset[str]] | None = None,
    behind: dict[str, str] | None = None,
    field_escapes: Mapping[str, Rate] | None = None,
    max_field_escape_rate: float | None = None,
) -> FleetStatus:
    """`desired`, `fleet` and `assigned` are keyed `site/device`; `fleet` (from the repo) marks
    strangers; `assigned` (lines per device, from the repo) admits the reported lines of a
    device whose desired state was not read (a report from the reconciler's state alone);
    `behind` (from the repo's git) says, per device, which commit the broker is missing;
    `field_escapes` (per `site/line`, from labelled audit samples) is judged against
    `max_field_escape_rate` on every row of that line."""
    moment = dt.datetime.now(dt.UTC).timestamp() if now is None else now
    keys = set(desired) | set(observations.devices) | (fleet or set())
    out = []
    rejections = Counter(observations.rejections)
    last = dict(observations.last_rejection)
    field = {
        line: broken
        for line, estimate in (field_escapes or {}).items()
        if (broken := field_escape_violation(estimate, max_field_escape_rate)) is not None
    }
    for key in sorted(keys):
        site, _, device = key.partition("/")
        doc = desired.get(key)
        obs = observations.devices.get(key)
        mine = None if assigned is None else assigned.get(key, frozenset())
        rows, foreign = _line_rows(doc, obs, mine, field)
        for item in foreign:
            rejections[item.reason.value] += 1
            last[item.reason.value] = item.detail(key)
        cond = condition(doc, obs, rows, moment)
        missing = (behind or {}).get(key, "")
        if missing and cond.type in (ConditionType.SYNCED, ConditionType.PROGRESSING):
            cond = Condition(ConditionType.PROGRESSING, Reason.OUT_OF_SYNC, missing)
        out.append(
            DeviceStatus(
                site,
                device,
                cond,
                doc,
                obs,
                tuple(rows),
                in_fleet=_in_fleet(key, doc, fleet),
                sync=sync(doc, obs, cond, missing),
                health=health(cond),
            )
        )
    return FleetStatus(out, dict(rejections), last)


def _in_fleet(key: str, doc: DesiredState | None, fleet: set[str] | None) -> bool | None:
    """`DeviceStatus.in_fleet`: from the repository's device list, else known only when a
    desired state is published for the device."""
    if fleet is not None:
        return key in fleet
    return True if doc is not None else None


def device_json(dev: DeviceStatus, now: float) -> dict[str, Any]:
    """One device of `--format json` (floats as reported: see `json_chunks` for strictness)."""
    rep = None if dev.observation is None else dev.observation.reported
    desired = dev.desired
    return {
        "site": dev.site,
        "device": dev.device,
        "in_fleet": dev.in_fleet,
        "condition": dev.condition.type.value,
        "reason": dev.condition.reason,
        "message": dev.condition.message,
        "sync": {"status": dev.sync.value, "reason": dev.sync.reason, "message": dev.sync.message},
        "health": {
            "status": dev.health.value,
            "reason": dev.health.reason,
            "message": dev.health.message,
        },
        "last_seen": None
        if dev.last_seen is None
        else dt.datetime.fromtimestamp(dev.last_seen, dt.UTC).isoformat(),
        "last_seen_seconds_ago": None if dev.last_seen is None else round(now - dev.last_seen, 1),
        "online": None if dev.observation is None else dev.observation.online,
        "last_refused": _refused_json(dev.observation),
        "desired": None
        if desired is None
        else {
            "generation": desired.generation,
            "commit": desired.commit,
            "content_hash": desired.content_hash,
            "approval": None if desired.approval is None else desired.approval.model_dump(),
        },
        "accepted": None if rep is None or rep.desired is None else rep.desired.model_dump(),
        "applied": None if rep is None or rep.applied is None else rep.applied.model_dump(),
        "error": None if rep is None else rep.error,
        "warning": None if rep is None else rep.warning,
        "lines": [
            {
                "line": row.line,
                "desired_serving": row.desired_serving,
                "desired_candidate": row.desired_candidate,
                "stage": row.stage,
                "reported_serving": None if row.reported is None else row.reported.serving,
                "reported_candidate": None if row.reported is None else row.reported.candidate,
                "phase": None if row.reported is None else row.reported.phase,
                "metrics": None if row.metrics is None else metrics_json(row.metrics),
                "violations": [v.render() for v in row.violations],
            }
            for row in dev.lines
        ],
    }


def _refused_json(obs: DeviceObservation | None) -> dict[str, Any] | None:
    got = None if obs is None else obs.refused
    if obs is None or got is None:
        return None
    at = obs.refused_at
    return {
        "topic": got.topic,
        "reason": got.reason.value,
        "detail": got.detail,
        "at": None if at is None else dt.datetime.fromtimestamp(at, dt.UTC).isoformat(),
    }


def json_chunks(
    status: FleetStatus, now: float, extra: Mapping[str, Any] | None = None
) -> Iterator[str]:
    """`linefleet status --format json` as strict JSON text, in pieces to write as they come.

    One object: `format_version`, `counts`, `rejected`, `last_rejected`, `reconciler`, then
    `devices` with one device per line (10,000 devices are 10,000 lines, not a million), then
    `non_finite` and the `extra` keys. A NaN or infinity a device reported becomes null and its
    path is listed in `non_finite` (strict JSON: no parser accepts `Infinity`). Each device is
    encoded by the standard library's C encoder; only one that holds a non-finite number is
    walked value by value.
    """
    flagged: list[str] = []
    head = {
        "format_version": 1,
        "counts": status.counts(),
        "rejected": status.rejections,
        "last_rejected": status.last_rejection,
        "reconciler": {k: status.reconciler.get(k) for k in RECONCILER_KEYS}
        if status.reconciler
        else None,
    }
    yield "{\n"
    for key, value in head.items():
        yield f"  {json.dumps(key)}: {_strict(value, key, flagged)},\n"
    yield '  "devices": ['
    for i, dev in enumerate(status.devices):
        yield ",\n    " if i else "\n    "
        yield _strict(device_json(dev, now), f"devices[{i}]", flagged)
    yield "\n  ]" if status.devices else "]"
    rest = [(key, _strict(value, key, flagged)) for key, value in (extra or {}).items()]
    yield f',\n  "non_finite": {json.dumps(flagged)}'
    if status.notes:
        yield f',\n  "notes": {json.dumps(status.notes)}'
    for key, text in rest:
        yield f",\n  {json.dumps(key)}: {text}"
    yield "\n}\n"


def _strict(value: Any, path: str, flagged: list[str]) -> str:
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:  # a NaN or an infinity somewhere in it
        return json.dumps(finite(value, path, flagged), allow_nan=False)


def as_json(status: FleetStatus, now: float) -> dict[str, Any]:
    """The JSON document of `json_chunks`, parsed (for callers that want the values)."""
    doc: dict[str, Any] = json.loads("".join(json_chunks(status, now)))
    return doc


_NEEDS_FRAMES = {
    "frames": ("error_rate", "latency_p95_ms", "defect_rate", "drift_score"),
    "candidate_frames": (
        "candidate_error_rate",
        "candidate_latency_p95_ms",
        "candidate_defect_rate",
        "shadow_agreement",
    ),
}


def metrics_json(metrics: LineMetrics) -> dict[str, Any]:
    """A metrics window as JSON; a value with no frames behind it is null, not 0."""
    out: dict[str, Any] = metrics.model_dump(mode="python")
    for count, names in _NEEDS_FRAMES.items():
        if out[count] == 0:
            for name in names:
                out[name] = None
    return out


def finite(value: Any, path: str, flagged: list[str]) -> Any:
    """`value` with every NaN or infinity replaced by null; their paths go to `flagged`
    (strict JSON: a device reporting `1e999` must not make `status --format json` emit
    `Infinity`, which no JSON parser accepts)."""
    if isinstance(value, float) and not math.isfinite(value):
        flagged.append(path)
        return None
    if isinstance(value, dict):
        return {k: finite(v, f"{path}.{k}" if path else str(k), flagged) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v, f"{path}[{i}]", flagged) for i, v in enumerate(value)]
    return value
