"""The reported state: what the device tells the reconciler, built from the agent's view.

One `ReportedState` snapshot (protocol section 6): the desired and applied generations, per
line the phase, the models running, messages about failed models, and the metrics window
(which each report takes and restarts), plus the spool counters. The body is built once, checked
once as the typed `ReportedState` (never send what the protocol refuses), and encoded once;
`fit` keeps it under the protocol's size limit by dropping per-camera and confusion details
first. It is not re-encoded from the typed model: the protocol's optional untyped parts
(`outbox`, `cameras`, `lines[].spool`, the extra metrics) travel beside the typed fields, and
the bytes stay the ones receivers always got.

The report reads the device through `Reporting`, the few parts it needs (the agent has them);
it changes nothing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Protocol

from edge_puller.artifacts import ArtifactStore
from edge_puller.engine import Engine
from edge_puller.events import now_iso
from edge_puller.handrollback import REASON
from edge_puller.metrics import LineMetrics
from edge_puller.outbox import Outbox
from edge_puller.spool import Spool
from edge_puller.state import Failure, LocalState
from linefleet_core.wire import MAX_REPORTED_BYTES, PROTOCOL, Applied, ReportedState

AGENT = "linefleet-edge/0.1.0"


class Reporting(Protocol):
    """What a report reads: identity, state, the engine and store, problems, counters."""

    site: str
    device: str
    state: LocalState
    engine: Engine
    store: ArtifactStore
    outbox: Outbox
    error: str
    waiting: str
    frames_problem: str

    def frame_size_problems(self) -> list[str]: ...

    def frame_size_warnings(self) -> list[str]: ...

    camera_status: Callable[[], dict[str, dict[str, Any]]] | None
    metrics: dict[str, LineMetrics]
    spools: dict[str, Spool]
    lock: threading.Lock
    """Guards `metrics` and `spools` (frames are served on other threads)."""

    @property
    def removed(self) -> bool: ...


def unreadable_only(lines: list[dict[str, Any]]) -> list[str]:
    """Lines whose last window had unreadable frames and no decided one: the line is blind (a
    camera writing a format OpenCV cannot read, truncated files), a device error as a camera
    that cannot be opened is, so `linefleet status` does not show it Healthy."""
    found = []
    for line in lines:
        metrics = line.get("metrics") or {}
        if metrics.get("unreadable_frames") and not metrics.get("frames"):
            found.append(
                f"frames {line['line']}: {metrics['unreadable_frames']} unreadable frame(s) and "
                "none decided since the last report"
            )
    return found


def build_report(agent: Reporting) -> bytes:
    """The `ReportedState` snapshot (JSON bytes, checked and fitted) of what the agent holds,
    runs and measures."""
    state, target = agent.state, agent.state.target
    desired = applied = None
    if target is not None:
        doc = target.document
        desired = Applied(
            generation=doc.generation, content_hash=doc.content_hash, commit=doc.commit
        ).model_dump()
    if state.applied_generation and state.applied_hash:
        applied = Applied(
            generation=state.applied_generation,
            content_hash=state.applied_hash,
            commit=state.applied_commit or None,
        ).model_dump()
    keys = sorted(set(target.lines if target else ()) | set(state.active))
    lines = [_line_status(agent, key) for key in keys]
    blind = "; ".join(unreadable_only(lines))
    error = "; ".join(
        text
        for text in (
            agent.error or agent.waiting,
            agent.frames_problem,
            *agent.frame_size_problems(),
            blind,
        )
        if text
    )
    if agent.removed:
        error = "removed from the fleet"
    body = {
        "protocol": PROTOCOL,
        "kind": "ReportedState",
        "site": agent.site,
        "device": agent.device,
        "at": now_iso(),
        "agent": AGENT,
        "desired": desired,
        "applied": applied,
        "lines": lines,
        "error": error[:2000],
        "warning": "; ".join(agent.frame_size_warnings())[:2000],
        "outbox": agent.outbox.size(),
    }
    if agent.camera_status is not None:
        body["cameras"] = agent.camera_status()
    ReportedState.model_validate(body)  # never send what the protocol refuses
    return fit(body)


def _failure(ref: str, sha: str, failure: Failure) -> str:
    """`REF (SHA12) REASON: MESSAGE`: which of the line's models (serving, previous, candidate,
    novelty) failed, not only its digest."""
    return f"{ref} ({sha[:12]}) {failure.reason}: {failure.message.removeprefix(ref + ': ')}"


def _line_status(agent: Reporting, key: str) -> dict[str, Any]:
    target = agent.state.target
    wanted = target.lines.get(key) if target else None
    active = agent.state.active.get(key)
    running = agent.engine.lines().get(key)
    messages = []
    phase = "pending"
    if wanted is not None:
        failures = agent.state.failures
        refs = {m.artifact.sha256: m.ref for m in wanted.models()}
        failed = {sha: failures.get(sha) for sha in refs}
        messages = [_failure(refs[sha], sha, f) for sha, f in failed.items() if f]
        serving = wanted.serving.artifact.sha256
        serving_failed = serving in failures
        candidate_failed = (
            wanted.candidate is not None and wanted.candidate.artifact.sha256 in failures
        )
        by_hand = failures.get(serving)
        if by_hand is not None and by_hand.reason == REASON:
            phase = "rolled_back"  # an operator's rollback: it serves the previous model
        elif serving_failed:
            phase = "failed"
        elif active is not None and active.serving == wanted.serving:
            phase = "rolled_back" if candidate_failed else "serving"
        elif agent.store.has(serving):
            phase = "staged"
        elif agent.store.partial_size(serving):
            phase = "downloading"
    elif active is not None:
        messages = ["no longer in the desired state"]
    with agent.lock:
        metrics = agent.metrics.get(key)
    reference = active.serving.reference_stats if active and active.serving else {}
    status: dict[str, Any] = {
        "line": key,
        "phase": phase,
        "serving": running.serving.spec.ref if running else None,
        "candidate": running.candidate.spec.ref if running and running.candidate else None,
        "stage": running.stage if running else None,
        "previous": running.standby.spec.ref if running and running.standby else None,
        "message": "; ".join(messages)[:1000],
        "metrics": metrics.snapshot(reference) if metrics else None,
    }
    with agent.lock:
        spool = agent.spools.get(key)
    if spool is not None:
        status["spool"] = {
            **asdict(spool.counters),
            "pending": spool.pending(),
            "pending_by_reason": spool.pending_by_reason(),
        }
    return status


SIGNATURE_ROOM = 512
"""Bytes kept free for the device's signature (`edge_puller.link.sign_payload`)."""


def fit(body: dict[str, Any]) -> bytes:
    """`body` encoded, under the protocol's size limit: per-camera and confusion details are
    dropped from it first when it would not fit."""
    document = json.dumps(body, sort_keys=True).encode()
    if len(document) <= MAX_REPORTED_BYTES - SIGNATURE_ROOM:
        return document
    for line in body["lines"]:
        metrics = line.get("metrics") or {}
        for key in ("cameras", "confusion", "defect_rate_by_class"):
            metrics.pop(key, None)
        line.pop("spool", None)
        line["message"] = line["message"][:200]
    if len(json.dumps(body)) > MAX_REPORTED_BYTES:
        body.pop("cameras", None)
    return json.dumps(body, sort_keys=True).encode()
