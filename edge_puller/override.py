"""An inspector's correction of a decision, queued on the device (`linefleet edge override`).

An inspector at the line's HMI says "frame X is actually class Y". This module looks up what
the device decided on frame X (`edge_puller/recent.py`: which line and camera, which model,
what it said, and the frame itself), checks Y against the line's taxonomy in the persisted
desired state, and queues an `inspection-override` event (docs/protocol.md section 7) in the
device's outbox together with the frame as an `LFF1` envelope (section 9), frame first. A
batch (`queue_overrides`, read from a file by `edge_puller/corrections.py`) is checked as a
whole and queued in one transaction, or refused as a whole. The running agent delivers them
in order like every other message; with no agent running, or no broker, they wait in the
outbox. It reads the state directory only and never writes
`state.json`, so it is safe while the agent runs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_puller.events import event_builder
from edge_puller.outbox import Outbox
from edge_puller.recent import Recorded, lookup
from edge_puller.state import LocalState, StateStore
from edge_puller.target import Target
from linefleet_core.errors import LinefleetError, PermanentError, UsageError, need_directory
from linefleet_core.wire import Channel, EventType, FrameError, decode_frame, topic

MAX_INSPECTOR = 128
MAX_NOTE = 1000


@dataclass(frozen=True)
class OverrideRequest:
    frame_id: str
    label: str
    inspector: str
    line: str | None = None
    note: str = ""
    source: str = ""
    """Where the request came from (`FILE:LINE` for a batch), named in its errors."""

    def names(self, option: str, value: str) -> str:
        """`--frame f-1` from the command line, `FILE:3: frame f-1` from a batch file."""
        return f"{self.source}: {option} {value}" if self.source else f"--{option} {value}"


@dataclass(frozen=True)
class Queued:
    seq: int
    line: str
    model: str
    predicted: str
    label: str
    taxonomy: str
    frame_sha256: str


@dataclass(frozen=True)
class _Checked:
    """A request that passed every check: the event's details and the frame it is about."""

    request: OverrideRequest
    decided: Recorded
    taxonomy: str
    frame_sha256: str
    details: dict[str, Any]


def queue_override(state_dir: Path, request: OverrideRequest) -> Queued:
    """Validate `request` against the device's state and queue the event and its frame.

    `UsageError` (exit 2): no state directory or desired state, unknown frame or line.
    `PermanentError` (exit 1): the class is not in the line's taxonomy, or it is what the
    model said already (nothing to correct).
    """
    return queue_overrides(state_dir, [request])[0]


def queue_overrides(state_dir: Path, requests: Sequence[OverrideRequest]) -> list[Queued]:
    """Check every request, then queue all of them in one outbox transaction (consecutive
    `seq`s, each event after its frame), or none: the error lists every refused request, and
    is a `UsageError` if any of them is one (an unknown frame may just not be recorded yet)."""
    state = _read_state(state_dir)
    target = state.target
    if target is None:
        raise UsageError(
            f"--state-dir {state_dir}: no desired state received yet, so no taxonomy to check "
            "the class against"
        )
    taxonomies = _taxonomies(target)
    checked: list[_Checked] = []
    errors: list[LinefleetError] = []
    seen: dict[tuple[str, str], OverrideRequest] = {}
    for request in requests:
        try:
            done = _check(request, state, taxonomies, state_dir)
        except (UsageError, PermanentError) as exc:
            errors.append(exc)
            continue
        first = seen.setdefault((done.decided.line, request.frame_id), request)
        if first is not request:
            again = f"{request.names('frame', request.frame_id)}: corrected twice in one batch"
            errors.append(UsageError(f"{again} (first at {first.source or 'the command line'})"))
            continue
        checked.append(done)
    if errors:
        kind = UsageError if any(isinstance(e, UsageError) for e in errors) else PermanentError
        raise kind("\n".join(str(e) for e in errors))
    outbox = Outbox(state_dir / "outbox.db")
    builders = [
        (
            event_builder(
                site=target.document.site,
                device=target.document.device,
                type=EventType.INSPECTION_OVERRIDE.value,
                reason="inspector",
                message=f"{c.details['inspector']}: frame {c.request.frame_id} is "
                f"{c.request.label}, not {c.decided.predicted} ({c.decided.model})",
                line=c.decided.line,
                generation=state.generation,
                details=c.details,
                install=outbox.install,
            ),
            (topic(target.document.site, target.document.device, Channel.FRAMES), c.decided.frame),
        )
        for c in checked
    ]
    try:
        seqs = outbox.put_events(
            topic(target.document.site, target.document.device, Channel.EVENTS), builders
        )
    finally:
        outbox.close()
    return [
        Queued(
            seq,
            c.decided.line,
            c.decided.model,
            c.decided.predicted,
            c.request.label,
            c.taxonomy,
            c.frame_sha256,
        )
        for seq, c in zip(seqs, checked, strict=True)
    ]


def _check(
    request: OverrideRequest,
    state: LocalState,
    taxonomies: dict[str, tuple[str, list[str]]],
    state_dir: Path,
) -> _Checked:
    """Everything `queue_override` documents as refused, for one request."""
    inspector = request.inspector.strip()
    if not inspector or len(inspector) > MAX_INSPECTOR:
        where = f"{request.source}: inspector" if request.source else "--inspector"
        raise UsageError(f"{where}: give a name of 1 to {MAX_INSPECTOR} characters")
    target = state.target
    assert target is not None  # checked by the caller
    if request.line is not None and request.line not in target.lines:
        served = ", ".join(sorted(target.lines))
        raise UsageError(
            f"{request.names('line', request.line)}: not served by this device (it serves {served})"
        )
    decided = lookup(state_dir, request.frame_id, request.line)
    if decided is None:
        where = f" on {request.line}" if request.line else ""
        raise UsageError(
            f"{request.names('frame', request.frame_id)}: no decision on this frame{where} "
            f"among the device's recent decisions ({state_dir / 'recent.db'})"
        )
    if decided.line not in taxonomies:
        raise PermanentError(
            f"frame's line {decided.line} is no longer in this device's desired state "
            f"(generation {state.generation}): its taxonomy is unknown"
        )
    taxonomy_ref, classes = taxonomies[decided.line]
    if request.label not in classes:
        raise PermanentError(
            f"{request.names('label', request.label)}: not a class of {taxonomy_ref} on "
            f"{decided.line} (classes: {', '.join(classes)})"
        )
    if request.label == decided.predicted:
        raise PermanentError(
            f"{request.names('label', request.label)}: {decided.model} already said "
            f"{decided.predicted} on frame {request.frame_id}; nothing to correct"
        )
    try:
        meta, _ = decode_frame(decided.frame)
    except FrameError as exc:
        raise PermanentError(
            f"{state_dir / 'recent.db'}: frame {request.frame_id}: {exc}"
        ) from None
    details: dict[str, Any] = {
        "frame_sha256": meta.sha256,
        "frame_id": request.frame_id,
        "camera": decided.camera,
        "model": decided.model,
        "predicted": decided.predicted,
        "confidence": decided.confidence,
        "decided_at": decided.at,
        "label": request.label,
        "inspector": inspector,
        "taxonomy": taxonomy_ref,
    }
    if request.note:
        details["note"] = request.note[:MAX_NOTE]
    return _Checked(request, decided, taxonomy_ref, meta.sha256, details)


def _read_state(state_dir: Path) -> LocalState:
    """The persisted state, read without touching the folder (the agent may be writing it)."""
    need_directory("--state-dir", state_dir)
    path = state_dir / StateStore.FILE
    try:
        return LocalState.from_dict(json.loads(path.read_bytes()))
    except FileNotFoundError:
        return LocalState()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PermanentError(f"{path}: unreadable local state: {exc}") from None


def _taxonomies(target: Target) -> dict[str, tuple[str, list[str]]]:
    """Per line of the held desired document: its taxonomy ref and classes."""
    return {key: (s.taxonomy.ref, list(s.taxonomy.classes)) for key, s in target.lines.items()}
