"""The fleet map's rows: the reconciler's per-device status joined with the fleet repo (pure).

One `LineView` per (line, device) the status knows, plus one per line the repo declares that
no device reported (Unknown). Thresholds come from the device's desired state, else from the
repo's policy. Metrics history gets the current report's window appended.
"""

from __future__ import annotations

from dataclasses import replace

from linefleet.report.data import Gates, LineView
from linefleet.report.history import History, merge, points, series
from linefleet_core.conditions import ConditionType, Reason
from linefleet_core.fleet import HealthGates
from linefleet_core.spec import FleetSpec
from linefleet_core.wire import HealthGatesSpec
from reconciler.service.fleetstatus import (
    DeviceStatus,
    FleetStatus,
    LineRow,
    condition,
    health,
)


def gates(found: HealthGatesSpec | HealthGates | None) -> Gates | None:
    if found is None:
        return None
    return Gates(
        max_latency_p95_ms=float(found.max_latency_p95_ms),
        min_shadow_agreement=float(found.min_shadow_agreement),
        max_drift_score=float(found.max_drift_score),
    )


def _row_view(
    dev: DeviceStatus, row: LineRow, spec: FleetSpec | None, desired_known: bool, now: float
) -> LineView:
    site, _, line = row.line.partition("/")
    # The reconciler's own rules, judged on this line alone: a rollback on one line of a
    # device does not make its other lines Degraded.
    cond = condition(dev.desired, dev.observation, [row], now)
    state, reason, message = cond.type.value, cond.reason, cond.message
    if not desired_known and dev.desired is None and cond.type is ConditionType.PROGRESSING:
        state, reason = ConditionType.UNKNOWN.value, Reason.DESIRED_NOT_READ
        message = "desired state not read: add --broker to compare it with the report"
    got = row.reported
    declared = None if spec is None else spec.lines.get(row.line)
    serving = row.desired_serving or (got.serving if got else None)
    candidate, stage = row.desired_candidate, row.stage
    if serving is None and declared is not None:
        serving = declared.rollout.serving
    if candidate is None and got is not None and got.candidate:
        candidate, stage = got.candidate, got.stage
    if candidate is None and declared is not None and declared.rollout.candidate is not None:
        candidate = declared.rollout.candidate.model
        stage = declared.rollout.candidate.stage
    found: HealthGatesSpec | HealthGates | None = None
    if dev.desired is not None:
        found = next(
            (ln.health_gates for ln in dev.desired.spec.lines if ln.line == row.line), None
        )
    if found is None and spec is not None:
        found = spec.policy.health_gates
    return LineView(
        site=site,
        line=line,
        condition=state,
        reason=reason,
        message=message,
        sync=dev.sync.value,
        health=health(cond).value,
        device=f"{dev.device} (not in fleet)" if dev.in_fleet is False else dev.device,
        serving=serving,
        candidate=candidate,
        stage=stage,
        phase=None if got is None else got.phase,
        last_seen=dev.last_seen,
        gates=gates(found),
    )


def _current(status: FleetStatus) -> History:
    extra = []
    for dev in status.devices:
        rep = None if dev.observation is None else dev.observation.reported
        if rep is not None:
            extra += list(points(rep))
    return merge({}, extra)


def line_views(
    status: FleetStatus | None,
    spec: FleetSpec | None,
    history: History,
    *,
    now: float,
    desired_known: bool = True,
) -> tuple[LineView, ...] | None:
    """None when there is no source at all (no status, no repo, no history)."""
    if status is None and spec is None and not history:
        return None
    if status is not None:
        history = merge(history, [(k, p) for k, ps in _current(status).items() for p in ps])
    views: list[LineView] = []
    seen: set[str] = set()
    for dev in [] if status is None else status.devices:
        for row in dev.lines:
            seen.add(row.line)
            view = _row_view(dev, row, spec, desired_known, now)
            views.append(replace(view, history=series(history, row.line, dev.device)))
    declared = {} if spec is None else spec.lines
    serving_of: dict[str, list[str]] = {}  # `site/line` -> devices serving it (one pass)
    for d in {} if spec is None else spec.devices.values():
        for key in dict.fromkeys(f"{d.site}/{s.line}" for s in d.serves):
            serving_of.setdefault(key, []).append(d.id)
    for key in sorted((set(declared) | {line for line, _ in history}) - seen):
        line = declared.get(key)
        site, _, line_id = key.partition("/")
        serving = serving_of.get(key, [])
        why = "no status source given" if status is None else "no device has reported this line"
        views.append(
            replace(
                LineView(
                    site=site,
                    line=line_id,
                    condition=ConditionType.UNKNOWN.value,
                    reason=Reason.NO_REPORT,
                    message=why,
                    device=", ".join(sorted(serving)) or None,
                    serving=None if line is None else line.rollout.serving,
                    candidate=None
                    if line is None or line.rollout.candidate is None
                    else line.rollout.candidate.model,
                    stage=None
                    if line is None or line.rollout.candidate is None
                    else line.rollout.candidate.stage,
                    gates=None if spec is None else gates(spec.policy.health_gates),
                ),
                history=series(history, key),
            )
        )
    return tuple(views)
