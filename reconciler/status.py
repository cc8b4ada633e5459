"""Fleet status: desired vs reported per device and line, with one condition per device (pure).

Conditions, first match wins (see `docs/protocol.md` section 6):
Stale (not heard from within 3 heartbeats, or its will says offline) > Failed (error, a failed
line, or the current desired state refused) > Degraded (rolled back, or past a health gate) >
Progressing (applied content differs from desired) > Synced. A device never heard from is
Unknown. An offline device is never shown as Synced.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from linefleet_core.wire import DesiredState, EventType, LineMetrics, LineSpec, LineStatus
from reconciler.gates import Violation, violations
from reconciler.observed import DeviceObservation, Observations, Rejection

RECONCILER_KEYS = (
    "last_applied_commit",
    "last_attempted_commit",
    "stalled_commit",
    "stalled_message",
    "last_error",
)
STALE_HEARTBEATS = 3
DEFAULT_HEARTBEAT = 60


class ConditionType(enum.StrEnum):
    SYNCED = "Synced"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    FAILED = "Failed"
    STALE = "Stale"
    UNKNOWN = "Unknown"


@dataclass(frozen=True)
class Condition:
    type: ConditionType
    reason: str
    message: str


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
    in_fleet: bool = True

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
            rows.append(LineRow(key, None, None, got.stage, got))
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
        return Condition(ConditionType.UNKNOWN, "NeverReported", "no report from the device yet")
    age = now - obs.last_seen
    if obs.online is False:
        return Condition(ConditionType.STALE, "Offline", f"offline; last seen {_ago(age)} ago")
    if age > window:
        return Condition(
            ConditionType.STALE, "HeartbeatMissed", f"last seen {_ago(age)} ago (window {window}s)"
        )
    rep = obs.reported
    if rep is None:
        return Condition(ConditionType.UNKNOWN, "NeverReported", "online but no reported state")
    if rep.error:
        return Condition(ConditionType.FAILED, "DeviceError", rep.error)
    failed = [row.line for row in rows if row.reported and row.reported.phase == "failed"]
    if failed:
        return Condition(ConditionType.FAILED, "LineFailed", f"failed: {', '.join(failed)}")
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
                "RefusedDocument",
                f"refused generation {last.generation}: {why}",
            )
    rolled = [row.line for row in rows if row.reported and row.reported.phase == "rolled_back"]
    if rolled:
        return Condition(ConditionType.DEGRADED, "RolledBack", f"rolled back: {', '.join(rolled)}")
    broken = [f"{row.line} {v.render()}" for row in rows for v in row.violations]
    if broken:
        return Condition(ConditionType.DEGRADED, "HealthGate", "; ".join(broken))
    if desired is None:
        return Condition(ConditionType.PROGRESSING, "NoDesiredState", "no desired state published")
    applied = rep.applied
    if applied is None or applied.content_hash != desired.content_hash:
        have = "nothing" if applied is None else f"generation {applied.generation}"
        return Condition(
            ConditionType.PROGRESSING,
            "Converging",
            f"runs {have}, desired generation {desired.generation}",
        )
    return Condition(
        ConditionType.SYNCED, "Applied", f"runs generation {applied.generation} as desired"
    )


def fleet_status(
    desired: dict[str, DesiredState],
    observations: Observations,
    now: float | None = None,
    fleet: set[str] | None = None,
    assigned: Mapping[str, frozenset[str]] | None = None,
) -> FleetStatus:
    """`desired`, `fleet` and `assigned` are keyed `site/device`; `fleet` (from the repo) marks
    strangers; `assigned` (lines per device, from the repo) admits the reported lines of a
    device whose desired state was not read (a report from the reconciler's state alone)."""
    moment = dt.datetime.now(dt.UTC).timestamp() if now is None else now
    keys = set(desired) | set(observations.devices) | (fleet or set())
    out = []
    rejections = Counter(observations.rejections)
    last = dict(observations.last_rejection)
    for key in sorted(keys):
        site, _, device = key.partition("/")
        doc = desired.get(key)
        obs = observations.devices.get(key)
        mine = None if assigned is None else assigned.get(key, frozenset())
        rows, foreign = _line_rows(doc, obs, mine)
        for item in foreign:
            rejections[item.reason.value] += 1
            last[item.reason.value] = item.detail(key)
        out.append(
            DeviceStatus(
                site,
                device,
                condition(doc, obs, rows, moment),
                doc,
                obs,
                tuple(rows),
                in_fleet=fleet is None or key in fleet,
            )
        )
    return FleetStatus(out, dict(rejections), last)


def as_json(status: FleetStatus, now: float) -> dict[str, Any]:
    devices = []
    for dev in status.devices:
        rep = None if dev.observation is None else dev.observation.reported
        devices.append(
            {
                "site": dev.site,
                "device": dev.device,
                "in_fleet": dev.in_fleet,
                "condition": dev.condition.type.value,
                "reason": dev.condition.reason,
                "message": dev.condition.message,
                "last_seen": None
                if dev.last_seen is None
                else dt.datetime.fromtimestamp(dev.last_seen, dt.UTC).isoformat(),
                "last_seen_seconds_ago": None
                if dev.last_seen is None
                else round(now - dev.last_seen, 1),
                "online": None if dev.observation is None else dev.observation.online,
                "desired": None
                if dev.desired is None
                else {
                    "generation": dev.desired.generation,
                    "commit": dev.desired.commit,
                    "content_hash": dev.desired.content_hash,
                    "approval": None
                    if dev.desired.approval is None
                    else dev.desired.approval.model_dump(),
                },
                "accepted": None
                if rep is None or rep.desired is None
                else rep.desired.model_dump(),
                "applied": None if rep is None or rep.applied is None else rep.applied.model_dump(),
                "lines": [
                    {
                        "line": row.line,
                        "desired_serving": row.desired_serving,
                        "desired_candidate": row.desired_candidate,
                        "stage": row.stage,
                        "reported_serving": None if row.reported is None else row.reported.serving,
                        "reported_candidate": None
                        if row.reported is None
                        else row.reported.candidate,
                        "phase": None if row.reported is None else row.reported.phase,
                        "metrics": None
                        if row.metrics is None
                        else row.metrics.model_dump(mode="json"),
                        "violations": [v.render() for v in row.violations],
                    }
                    for row in dev.lines
                ],
            }
        )
    return {
        "format_version": 1,
        "counts": status.counts(),
        "rejected": status.rejections,
        "last_rejected": status.last_rejection,
        "reconciler": {k: status.reconciler.get(k) for k in RECONCILER_KEYS}
        if status.reconciler
        else None,
        "devices": devices,
    }
