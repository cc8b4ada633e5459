"""The reported state: what the device tells the reconciler, built from the agent's view.

One `ReportedState` snapshot (protocol section 6): the desired and applied generations, per
line the phase, the models running, messages about failed models, and the metrics window
(which each report takes and restarts), plus the spool counters. `fit` keeps a report under
the protocol's size limit by dropping per-camera and confusion details first.

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
from edge_puller.state import LocalState
from linefleet_core.wire import MAX_REPORTED_BYTES, PROTOCOL, Applied

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
    camera_status: Callable[[], dict[str, dict[str, Any]]] | None
    metrics: dict[str, LineMetrics]
    spools: dict[str, Spool]
    lock: threading.Lock
    """Guards `metrics` and `spools` (frames are served on other threads)."""

    @property
    def removed(self) -> bool: ...


def build_report(agent: Reporting) -> bytes:
    """The `ReportedState` snapshot (JSON bytes) of what the agent holds, runs and measures."""
    state, target = agent.state, agent.state.target
    desired = applied = None
    if target is not None:
        desired = Applied(
            generation=target.generation, content_hash=target.content_hash, commit=target.commit
        ).model_dump()
    if state.applied_generation and state.applied_hash:
        applied = Applied(
            generation=state.applied_generation,
            content_hash=state.applied_hash,
            commit=state.applied_commit or None,
        ).model_dump()
    keys = sorted(set(target.lines if target else ()) | set(state.active))
    lines = [_line_status(agent, key) for key in keys]
    error = "; ".join(text for text in (agent.error or agent.waiting, agent.frames_problem) if text)
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
        "outbox": agent.outbox.size(),
    }
    if agent.camera_status is not None:
        body["cameras"] = agent.camera_status()
    return json.dumps(body, sort_keys=True).encode()


def _line_status(agent: Reporting, key: str) -> dict[str, Any]:
    target = agent.state.target
    wanted = target.lines.get(key) if target else None
    active = agent.state.active.get(key)
    running = agent.engine.lines().get(key)
    messages = []
    phase = "pending"
    if wanted is not None:
        failed = {m.sha256: agent.state.failures.get(m.sha256) for m in wanted.models()}
        messages = [f"{sha[:12]} {f.reason}: {f.message}" for sha, f in failed.items() if f]
        serving_failed = wanted.serving.sha256 in agent.state.failures
        candidate_failed = (
            wanted.candidate is not None and wanted.candidate.model.sha256 in agent.state.failures
        )
        by_hand = agent.state.failures.get(wanted.serving.sha256)
        if by_hand is not None and by_hand.reason == REASON:
            phase = "rolled_back"  # an operator's rollback: it serves the previous model
        elif serving_failed:
            phase = "failed"
        elif active is not None and active.serving == wanted.serving:
            phase = "rolled_back" if candidate_failed else "serving"
        elif agent.store.has(wanted.serving.sha256):
            phase = "staged"
        elif agent.store.partial_size(wanted.serving.sha256):
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


def fit(document: bytes) -> bytes:
    """Keep a report under the protocol's size limit: drop per-camera and confusion details."""
    if len(document) <= MAX_REPORTED_BYTES - SIGNATURE_ROOM:
        return document
    body = json.loads(document)
    for line in body["lines"]:
        metrics = line.get("metrics") or {}
        for key in ("cameras", "confusion", "defect_rate_by_class"):
            metrics.pop(key, None)
        line.pop("spool", None)
        line["message"] = line["message"][:200]
    if len(json.dumps(body)) > MAX_REPORTED_BYTES:
        body.pop("cameras", None)
    return json.dumps(body, sort_keys=True).encode()
