"""Executors: one function per step kind, the only code that acts (disk, sessions, engine).

`EXECUTORS` maps each step type to its function; `execute` dispatches. Besides intake
(persisting a verified desired state), only these functions change the local state: a plan's
steps, and what arrived between ticks (a rollback by hand, a model failed for good: see
`edge_puller/arrivals.py`). A report, too, is a step: it queues the document, then records
what it said, so the planner knows when the next one is due. Executors raise
`TemporaryError` (retry later with backoff) or a `PermanentError` subclass with a `reason`
(the model is recorded as failed for this generation); the loop decides what happens next.
The desired state is persisted before any step runs. `activate` switches the engine first and
persists the new A/B assignment right after: a crash in between restarts on the previous
assignment, and the next plan makes the same switch again (level-triggered), so the switch
itself never waits for a disk write.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from edge_puller import handrollback
from edge_puller.engine import LineModels
from edge_puller.events import Emitter
from edge_puller.planner import fingerprint
from edge_puller.runtime import LoadedModel, ModelLoadError
from edge_puller.snapshot import Observable, snapshot
from edge_puller.spool import Spool, spool_folder
from edge_puller.state import ActiveLine, Failure, LocalState
from edge_puller.steps import (
    Activate,
    DeleteSpool,
    Download,
    HandRollback,
    LoadAndSmokeTest,
    MarkApplied,
    MarkSpool,
    Prune,
    RecordFailure,
    Report,
    Resume,
    Retire,
    Step,
    Unload,
    Verify,
    Wait,
)
from edge_puller.target import DEFAULT_GATES, DEFAULT_TELEMETRY
from linefleet_core.errors import TemporaryError, UsageError
from linefleet_core.wire import EventType, HealthGatesSpec


class Context(Observable, Emitter, Protocol):
    """The parts the executors act on: what a snapshot reads, plus the state's one writer
    (`save`), the event and report senders, and what the loop is waiting for."""

    waiting: str

    def save(self, state: LocalState) -> None: ...

    def send_report(self) -> None:
        """Queue a report of what the device holds, runs and measures now (no state change)."""


def line_models(ctx: Context, key: str, active: ActiveLine, gates: HealthGatesSpec) -> LineModels:
    """The engine's view of an A/B assignment, from sessions already loaded."""

    def session(sha: str | None) -> LoadedModel | None:
        return ctx.cache.get(sha) if sha else None

    serving = session(active.serving.artifact.sha256 if active.serving else None)
    if serving is None:
        raise RuntimeError(f"{key}: serving model is not loaded")  # the planner loads it first
    candidate = active.candidate
    loaded_candidate = session(candidate.artifact.sha256) if candidate else None
    return LineModels(
        key=key,
        serving=serving,
        standby=session(active.standby.artifact.sha256 if active.standby else None),
        candidate=loaded_candidate,
        stage=candidate.stage if candidate and loaded_candidate else None,
        canary_fraction=(candidate.canary_fraction or 0.0)
        if candidate and loaded_candidate
        else 0.0,
        gates=gates,
    )


def _gates(ctx: Context, line: str) -> HealthGatesSpec:
    target = ctx.state.target
    if target is not None and line in target.lines:
        return target.lines[line].health_gates
    return DEFAULT_GATES


def resume(ctx: Context, step: Resume) -> None:
    ctx.engine.activate(line_models(ctx, step.line, step.active, _gates(ctx, step.line)))


def download(ctx: Context, step: Download) -> None:
    artifact = step.model.artifact
    ctx.store.download(artifact.url, artifact.sha256, artifact.size)


def verify(ctx: Context, step: Verify) -> None:
    ctx.store.verify(step.model.artifact.sha256, step.model.artifact.size, step.resumed)


def load(ctx: Context, step: LoadAndSmokeTest) -> None:
    sha = step.model.artifact.sha256
    try:
        ctx.cache.load(ctx.store.path(sha), step.model)
    except ModelLoadError:
        if ctx.store.intact(sha):
            raise  # the model itself is bad: a permanent failure for this generation
        # The stored copy rotted on disk: drop it, and the next plan downloads it again.
        ctx.store.discard(sha)
        message = f"{step.model.ref}: stored copy is corrupt; downloading again"
        raise TemporaryError(message) from None


def activate(ctx: Context, step: Activate) -> None:
    before = ctx.state.active.get(step.line)
    models = line_models(ctx, step.line, step.active, step.gates)
    ctx.engine.activate(models)  # the switch first: a rollback waits for no disk write
    ctx.save(replace(ctx.state, active={**ctx.state.active, step.line: step.active}))
    old = before.serving.ref if before and before.serving else None
    new = step.active.serving.ref if step.active.serving else None
    candidate = step.active.candidate
    from_standby = before is not None and before.standby == step.active.serving
    ctx.emit(
        "activation",
        "standby-switch" if from_standby else "desired-state",
        f"{step.line}: serving {new}"
        + (f" (was {old})" if old and old != new else "")
        + (f", {candidate.stage} {candidate.ref}" if candidate else ""),
        line=step.line,
        details={
            "from": old,
            "to": new,
            "slot": step.active.serving_slot,
            "standby": step.active.standby.ref if step.active.standby else None,
            "candidate": candidate.ref if candidate else None,
            "stage": candidate.stage if candidate else None,
        },
    )


def mark_applied(ctx: Context, step: MarkApplied) -> None:
    target = ctx.state.target
    assert target is not None and target.document.generation == step.generation
    doc = target.document
    ctx.save(
        replace(
            ctx.state,
            applied_generation=doc.generation,
            applied_hash=doc.content_hash,
            applied_commit=doc.commit,
        )
    )


def retire(ctx: Context, step: Retire) -> None:
    active = {k: v for k, v in ctx.state.active.items() if k != step.line}
    ctx.save(replace(ctx.state, active=active))
    ctx.engine.remove(step.line)


def mark_spool(ctx: Context, step: MarkSpool) -> None:
    target = ctx.state.target
    line = target.lines.get(step.line) if target else None
    try:
        with ctx.lock:  # the link uploads from the spools it finds here
            spool = ctx.spools.get(step.line)
            if spool is None:
                policy = line.telemetry if line else DEFAULT_TELEMETRY  # retired: default budget
                spool = Spool(spool_folder(ctx.state_dir / "spool", step.line), policy)
                ctx.spools[step.line] = spool
        if not step.retired:
            spool.mark_retired(None)
        elif spool.counters.retired_at is None:  # kept across restarts: the grace period runs
            spool.mark_retired(time.time())
    except OSError as exc:
        raise TemporaryError(f"{step.line}: spool: {exc}", delay=30.0) from None


def delete_spool(ctx: Context, step: DeleteSpool) -> None:
    with ctx.lock:
        spool = ctx.spools.pop(step.line, None)
    if spool is None:
        return
    frames, size = spool.delete()
    if frames:
        ctx.emit(
            EventType.SPOOL_DISCARDED.value,
            "retired-line",
            f"{step.line}: no longer served; {frames} spooled frame(s) ({size} bytes) could not "
            "be uploaded within the grace period and were deleted",
            line=step.line,
            details={"frames": frames, "bytes": size},
        )


def unload(ctx: Context, step: Unload) -> None:
    ctx.cache.unload(step.sha256)


def prune(ctx: Context, step: Prune) -> None:
    ctx.store.prune(step.keep)


def report(ctx: Context, step: Report) -> None:
    ctx.send_report()
    ctx.save(replace(ctx.state, reported=fingerprint(snapshot(ctx))))


def wait(ctx: Context, step: Wait) -> None:
    ctx.waiting = step.reason


def hand_rollback(ctx: Context, step: HandRollback) -> None:
    """Switch the line to its standby in the state (the next plan switches the engine), or
    leave the refusal beside the request for `linefleet edge rollback` to read."""
    if step.request is None:
        handrollback.settle(step.path, "unreadable request")
        return
    try:
        done = handrollback.rolled_back(ctx.state, step.request)
    except UsageError as exc:
        handrollback.settle(step.path, str(exc))
        return
    ctx.save(done.state)
    ctx.emit(**done.event)
    handrollback.settle(step.path)


def record_failure(ctx: Context, step: RecordFailure) -> None:
    failure = Failure(step.reason, step.message, ctx.state.generation)
    ctx.save(replace(ctx.state, failures={**ctx.state.failures, step.sha256: failure}))
    ctx.emit(
        step.event,
        step.reason,
        step.message + "; the incumbent keeps serving",
        line=step.line,
        details=dict(step.details),
    )


EXECUTORS: dict[type[Any], Callable[[Context, Any], None]] = {
    Resume: resume,
    Download: download,
    Verify: verify,
    LoadAndSmokeTest: load,
    Activate: activate,
    MarkApplied: mark_applied,
    Retire: retire,
    MarkSpool: mark_spool,
    DeleteSpool: delete_spool,
    Unload: unload,
    Prune: prune,
    Report: report,
    Wait: wait,
    HandRollback: hand_rollback,
    RecordFailure: record_failure,
}


def execute(ctx: Context, step: Step) -> None:
    EXECUTORS[type(step)](ctx, step)
