"""Rollback by hand, offline (`linefleet edge rollback --state-dir DIR --line L`).

An operator at the plant switches a line back to the model its device keeps hot as standby
(the line's `previous`), with no broker and no git. `rolled_back()` is the pure change: swap
the A/B slots, drop the candidate, and record the model that served as failed for this
generation with the reason `rolled-back-by-hand`, so the level-triggered planner keeps the
line where it is (as after a failed model) until a new desired state arrives. The switch is
then made by the planner like any other (`Resume`: the standby is already loaded).

Who applies it: with no agent running, the command itself (holding the state directory's
lock); with an agent running, the command drops a request in `requests/` and the agent takes
it at its next tick (within a second) and reports back. Either way a `rollback` event with
reason `by-hand` is queued in the outbox and the line reports phase `rolled_back` serving the
previous model: the reconciler sees the divergence from git when the device is back and
proposes the revert pull request (`reconciler.service.rollback`).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edge_puller.state import ActiveLine, Failure, LocalState
from linefleet_core.atomic import fsync_dir, write_atomic
from linefleet_core.errors import TemporaryError, UsageError

REASON = "rolled-back-by-hand"
REQUESTS = "requests"


@dataclass(frozen=True)
class Request:
    line: str
    operator: str = ""
    note: str = ""

    def to_json(self) -> bytes:
        return json.dumps(
            {"kind": "rollback", "line": self.line, "operator": self.operator, "note": self.note},
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Request:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("kind") != "rollback":
            raise ValueError("not a rollback request")
        return cls(str(data["line"]), str(data.get("operator", "")), str(data.get("note", "")))


@dataclass(frozen=True)
class Done:
    state: LocalState
    line: str
    rolled_back: str
    """The model ref that served and was rolled back."""
    serving: str
    """The model ref that serves now (the former standby)."""
    event: dict[str, Any]
    """`type`, `reason`, `message`, `line`, `details` of the event to queue."""


def rolled_back(state: LocalState, request: Request) -> Done:
    """The state with `request.line` switched to its standby (pure); UsageError if it cannot."""
    active = state.active.get(request.line)
    if active is None:
        known = ", ".join(sorted(state.active)) or "none"
        raise UsageError(f"--line {request.line}: the device serves no such line (lines: {known})")
    bad, standby = active.serving, active.standby
    if bad is None or standby is None:
        raise UsageError(f"--line {request.line}: no previous model is kept on the device")
    swapped = ActiveLine(active.slot_a, active.slot_b, "b" if active.serving_slot == "a" else "a")
    who = f" by {request.operator}" if request.operator else ""
    message = f"{request.line}: rolled back{who} from {bad.ref} to {standby.ref}" + (
        f" ({request.note})" if request.note else ""
    )
    failure = Failure(REASON, message, state.generation)
    new = replace(
        state,
        active={**state.active, request.line: swapped},
        failures={**state.failures, bad.artifact.sha256: failure},
    )
    event = {
        "type": "rollback",
        "reason": "by-hand",
        "message": message,
        "line": request.line,
        "details": {
            "from": bad.ref,
            "to": standby.ref,
            "operator": request.operator,
            "note": request.note,
            "offline": True,
        },
    }
    return Done(new, request.line, bad.ref, standby.ref, event)


def request_path(state_dir: Path, line: str) -> Path:
    return state_dir / REQUESTS / f"rollback-{line.replace('/', '__')}.json"


def drop_request(state_dir: Path, request: Request) -> Path:
    """Leave a request for the running agent (atomically: it never reads half a file)."""
    path = request_path(state_dir, request.line)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, request.to_json())
    return path


def pending(state_dir: Path) -> list[tuple[Path, Request | None]]:
    """Requests waiting in `requests/` (None: unreadable, to be discarded)."""
    folder = state_dir / REQUESTS
    if not folder.is_dir():
        return []
    found: list[tuple[Path, Request | None]] = []
    for path in sorted(folder.glob("rollback-*.json")):
        try:
            found.append((path, Request.from_json(path.read_bytes())))
        except (OSError, ValueError, KeyError):
            found.append((path, None))
    return found


def refused_path(path: Path) -> Path:
    return path.with_suffix(".refused")


def settle(path: Path, refusal: str | None = None) -> None:
    """Take a request away once handled; a refused one leaves its reason beside it."""
    if refusal is not None:
        write_atomic(refused_path(path), refusal.encode())
    path.unlink(missing_ok=True)
    fsync_dir(path.parent)


@dataclass(frozen=True)
class Outcome:
    line: str
    rolled_back: str
    serving: str
    by_agent: bool
    """True when a running agent made the switch, False when the command did (no agent)."""


def roll_back(state_dir: Path, request: Request, wait: float = 15.0) -> Outcome:
    """Apply `request` now: through the running agent, or directly when none runs."""
    lock = _try_lock(state_dir)
    if lock is None:
        return _through_agent(state_dir, request, wait)
    try:
        return _directly(state_dir, request)
    finally:
        os.close(lock)


def _try_lock(state_dir: Path) -> int | None:
    fd = os.open(state_dir / "agent.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _directly(state_dir: Path, request: Request) -> Outcome:
    from edge_puller.events import event_builder
    from edge_puller.outbox import Outbox
    from edge_puller.state import StateStore
    from linefleet_core.wire import Channel, topic

    store = StateStore(state_dir)
    state = store.load()
    if state.target is None:
        raise UsageError(f"--state-dir {state_dir}: the device holds no desired state yet")
    done = rolled_back(state, request)
    store.save(done.state)  # the agent resumes this assignment when it starts
    outbox = Outbox(state_dir / "outbox.db")
    try:
        site, device = state.target.document.site, state.target.document.device
        build = event_builder(site=site, device=device, generation=state.generation, **done.event)
        outbox.put_event(topic(site, device, Channel.EVENTS), build)
    finally:
        outbox.close()
    return Outcome(done.line, done.rolled_back, done.serving, by_agent=False)


def _through_agent(state_dir: Path, request: Request, wait: float) -> Outcome:
    from edge_puller.state import StateStore

    path = drop_request(state_dir, request)
    deadline = time.monotonic() + wait
    while path.exists():
        if time.monotonic() > deadline:
            path.unlink(missing_ok=True)
            raise TemporaryError(
                f"the agent on {state_dir} did not take the rollback within {wait:.0f}s; "
                "request withdrawn"
            )
        time.sleep(0.05)
    refused = refused_path(path)
    if refused.exists():
        reason = refused.read_text(encoding="utf-8")
        refused.unlink()
        raise UsageError(reason)
    active = StateStore(state_dir).read().active[request.line]
    serving = active.serving.ref if active.serving else "?"
    standby = active.standby.ref if active.standby else "?"
    return Outcome(request.line, standby, serving, by_agent=True)
