"""An inspector's correction of a decision, queued on the device (`linefleet edge override`).

An inspector at the line's HMI says "frame X is actually class Y". This module looks up what
the device decided on frame X (`edge_puller/recent.py`: which line and camera, which model,
what it said, and the frame itself), checks Y against the line's taxonomy in the persisted
desired state, and queues an `inspection-override` event (docs/protocol.md section 7) in the
device's outbox together with the frame as an `LFF1` envelope (section 9), frame first. The
running agent delivers both in order like every other message; with no agent running, or no
broker, they wait in the outbox. It reads the state directory only and never writes
`state.json`, so it is safe while the agent runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edge_puller.events import event_document
from edge_puller.outbox import Outbox
from edge_puller.recent import lookup
from edge_puller.state import LocalState, StateStore
from linefleet_core.errors import PermanentError, UsageError
from linefleet_core.wire import Channel, DesiredState, EventType, FrameError, decode_frame, topic

MAX_INSPECTOR = 128
MAX_NOTE = 1000


@dataclass(frozen=True)
class OverrideRequest:
    frame_id: str
    label: str
    inspector: str
    line: str | None = None
    note: str = ""


@dataclass(frozen=True)
class Queued:
    seq: int
    line: str
    model: str
    predicted: str
    label: str
    taxonomy: str
    frame_sha256: str


def queue_override(state_dir: Path, request: OverrideRequest) -> Queued:
    """Validate `request` against the device's state and queue the event and its frame.

    `UsageError` (exit 2): no state directory or desired state, unknown frame or line.
    `PermanentError` (exit 1): the class is not in the line's taxonomy, or it is what the
    model said already (nothing to correct).
    """
    inspector = request.inspector.strip()
    if not inspector or len(inspector) > MAX_INSPECTOR:
        raise UsageError(f"--inspector: give a name of 1 to {MAX_INSPECTOR} characters")
    state = _read_state(state_dir)
    target = state.target
    if target is None or state.document is None:
        raise UsageError(
            f"--state-dir {state_dir}: no desired state received yet, so no taxonomy to check "
            "the class against"
        )
    if request.line is not None and request.line not in target.lines:
        served = ", ".join(sorted(target.lines))
        raise UsageError(f"--line {request.line}: not served by this device (it serves {served})")
    decided = lookup(state_dir, request.frame_id, request.line)
    if decided is None:
        where = f" on {request.line}" if request.line else ""
        raise UsageError(
            f"--frame {request.frame_id}: no decision on this frame{where} among the device's "
            f"recent decisions ({state_dir / 'recent.db'})"
        )
    taxonomy_ref, classes = _taxonomy(state.document, decided.line, state_dir)
    if request.label not in classes:
        raise PermanentError(
            f"--label {request.label}: not a class of {taxonomy_ref} on {decided.line} "
            f"(classes: {', '.join(classes)})"
        )
    if request.label == decided.predicted:
        raise PermanentError(
            f"--label {request.label}: {decided.model} already said {decided.predicted} on "
            f"frame {request.frame_id}; nothing to correct"
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
    message = (
        f"{inspector}: frame {request.frame_id} is {request.label}, "
        f"not {decided.predicted} ({decided.model})"
    )

    def build(seq: int) -> bytes:
        return event_document(
            site=target.site,
            device=target.device,
            seq=seq,
            type=EventType.INSPECTION_OVERRIDE.value,
            reason="inspector",
            message=message,
            line=decided.line,
            generation=state.generation,
            details=details,
        )

    outbox = Outbox(state_dir / "outbox.db")
    try:
        frames_topic = topic(target.site, target.device, Channel.FRAMES)
        seq = outbox.put_event(
            topic(target.site, target.device, Channel.EVENTS),
            build,
            frame=(frames_topic, decided.frame),
        )
    finally:
        outbox.close()
    return Queued(
        seq,
        decided.line,
        decided.model,
        decided.predicted,
        request.label,
        taxonomy_ref,
        meta.sha256,
    )


def _read_state(state_dir: Path) -> LocalState:
    """The persisted state, read without touching the folder (the agent may be writing it)."""
    if not state_dir.is_dir():
        raise UsageError(f"--state-dir {state_dir}: no such directory")
    path = state_dir / StateStore.FILE
    try:
        return LocalState.from_dict(json.loads(path.read_bytes()))
    except FileNotFoundError:
        return LocalState()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PermanentError(f"{path}: unreadable local state: {exc}") from None


def _taxonomy(document: dict[str, Any], line: str, state_dir: Path) -> tuple[str, list[str]]:
    """The taxonomy ref and classes of `line` in the persisted desired document."""
    try:
        desired = DesiredState.model_validate(document)
    except ValidationError as exc:
        raise PermanentError(f"{state_dir / StateStore.FILE}: desired document: {exc}") from None
    for spec in desired.spec.lines:
        if spec.line == line:
            return spec.taxonomy.ref, list(spec.taxonomy.classes)
    raise PermanentError(
        f"frame's line {line} is no longer in this device's desired state (generation "
        f"{desired.generation}): its taxonomy is unknown"
    )
