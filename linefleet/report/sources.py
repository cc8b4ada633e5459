"""Fill `ReportData` from whichever sources were given (each optional), then render it.

    data = collect(Sources(repo=Path("fleet-repo"), broker="mqtt://127.0.0.1:1883"))

Status comes from the broker's retained state (as `linefleet status`), from the reconciler's
state directory, or both; metrics history from a JSON Lines file (see `history.py`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from linefleet.report.data import EscapeView, ReportData
from linefleet.report.fleetview import line_views
from linefleet.report.history import History, read_history, record
from linefleet_core.errors import UsageError
from linefleet_core.gcpause import paused_gc

if TYPE_CHECKING:
    from linefleet_core.spec import Checks, FleetSpec
    from reconciler.service.fleetstatus import FleetStatus
    from trainer.audits import FieldEscapes


@dataclass(frozen=True)
class Sources:
    repo: Path | None = None
    broker: str | None = None
    state_dir: Path | None = None
    labels: str | None = None
    history: Path | None = None
    record: bool = False
    quiet: float = 0.5


def _status(
    src: Sources,
    spec: FleetSpec | None,
    checks: Checks,
    escapes: Mapping[str, FieldEscapes] | None,
) -> tuple[FleetStatus, float]:
    from reconciler.service.statusread import read_status

    rates = None if escapes is None else {k: e.rate for k, e in escapes.items() if e.rate}
    return read_status(
        src.broker,
        repo=src.repo,
        state_dir=src.state_dir,
        quiet=src.quiet,
        spec=spec,
        checks=checks,
        field_escapes=rates,
    )


def escape_views(
    escapes: Mapping[str, FieldEscapes], spec: FleetSpec | None
) -> tuple[EscapeView, ...]:
    from reconciler.service.healthgates import field_escape_violation

    limit = None if spec is None else spec.policy.health_gates.max_field_escape_rate
    views = []
    for line, e in escapes.items():
        r = e.rate
        views.append(
            EscapeView(
                line,
                e.sampled,
                e.labelled,
                0 if r is None else r.count,
                0.0 if r is None else r.low,
                1.0 if r is None else r.high,
                limit,
                field_escape_violation(r, limit) is not None,
            )
        )
    return tuple(views)


def _record(path: Path, status: FleetStatus, history: History) -> int:
    known = {(key, p.at) for key, points in history.items() for p in points}
    fresh = []
    for dev in status.devices:
        rep = None if dev.observation is None else dev.observation.reported
        if rep is None:
            continue
        at = rep.at.timestamp()
        if any(
            ((ln.line, rep.device), at) not in known for ln in rep.lines if ln.metrics is not None
        ):
            fresh.append(rep)
    return record(path, fresh)


def collect(src: Sources) -> ReportData:
    """The report's data from every source given (a fleet of 10,000 devices builds about a
    million objects: Python's cycle collector waits until they are built, as for status)."""
    with paused_gc():
        return _collect(src)


def _collect(src: Sources) -> ReportData:
    from linefleet.report.labels import read_field_escapes, read_queues, store_url

    sources: list[str] = []
    notes: list[str] = []
    from reconciler.service.statusread import read_spec

    checks: Checks = {}  # files parsed once for the spec and for git (status --repo)
    spec = None if src.repo is None else read_spec(src.repo, checks)
    if src.record and (src.history is None or (src.broker is None and src.state_dir is None)):
        raise UsageError("--record needs --history FILE and --broker or --state-dir")
    history: History = {}
    if src.history is not None and (src.history.is_file() or not src.record):
        history = read_history(src.history)
    escapes = None
    if src.labels is not None:
        taxonomies = {} if spec is None else dict(spec.taxonomies)
        escapes = read_field_escapes(store_url(src.labels), taxonomies)
    status, now = None, time.time()
    if src.broker is not None or src.state_dir is not None:
        status, now = _status(src, spec, checks, escapes)
        notes += [f"{n[0].upper()}{n[1:]}." for n in status.notes]
        if src.broker is not None:
            sources.append(f"broker {src.broker}")
        if src.state_dir is not None:
            sources.append(f"reconciler state {src.state_dir}")
        if src.record and src.history is not None:
            added = _record(src.history, status, history)
            notes.append(f"Recorded {added} new device report(s) to {src.history}.")
    if src.history is not None:
        sources.append(f"metrics history {src.history}")
    elif status is not None:
        notes.append(
            "Metrics show only the latest report of each device: pass --history FILE "
            "(with --record to keep adding to it) for metrics over time."
        )
    timeline = None
    if src.repo is not None:
        from linefleet.report.timeline import read_timeline
        from linefleet_forge.gitrepo import open_repo

        try:
            repo = open_repo(src.repo)
        except UsageError as exc:
            sources.append(f"fleet files {src.repo}")
            notes.append(f"No rollout timeline: {exc}.")
        else:
            head = repo.head.commit.hexsha[:10] if repo.head.is_valid() else "no commits"
            sources.append(f"fleet repo {src.repo} at {head}")
            timeline = read_timeline(repo) if repo.head.is_valid() else ()
    labels = None
    if src.labels is not None:
        taxonomies = {} if spec is None else dict(spec.taxonomies)
        labels = read_queues(store_url(src.labels), taxonomies)
        sources.append("label store")
    return ReportData(
        generated_at=now,
        sources=tuple(sources),
        lines=line_views(status, spec, history, now=now, desired_known=src.broker is not None),
        timeline=timeline,
        labels=labels,
        escapes=None if escapes is None else escape_views(escapes, spec),
        notes=tuple(notes),
    )
