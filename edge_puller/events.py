"""The device's event document (docs/protocol.md section 7), one builder for every sender.

The agent emits events as it converges and serves; `linefleet edge override` emits an
inspector's correction from another process. Both go through the outbox, which assigns `seq`
when it stores the event: `event_builder` is the document waiting for that number.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any, Protocol

from linefleet_core.wire import PROTOCOL

MAX_MESSAGE = 2000


class Emitter(Protocol):
    """Something that queues the device's events (the agent does: `Agent.emit`)."""

    def emit(
        self,
        type: str,
        reason: str,
        message: str,
        line: str | None = None,
        details: dict[str, Any] | None = None,
        generation: int | None = None,
    ) -> None:
        """Queue one event; `generation` defaults to the one the device holds."""


def now_iso() -> str:
    """Now in UTC, as the wire writes times (milliseconds, `Z`)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_document(
    *,
    site: str,
    device: str,
    seq: int,
    type: str,
    reason: str,
    message: str,
    line: str | None,
    generation: int,
    details: dict[str, Any] | None = None,
    install: str | None = None,
) -> bytes:
    """The JSON bytes of one `Event` with sequence number `seq` of installation `install`."""
    event: dict[str, Any] = {
        "protocol": PROTOCOL,
        "kind": "Event",
        "site": site,
        "device": device,
        "seq": seq,
        "at": now_iso(),
        "type": type,
        "line": line,
        "generation": generation,
        "reason": reason,
        "message": message[:MAX_MESSAGE],
        "details": details or {},
    }
    if install is not None:
        event["install"] = install
    return json.dumps(event, sort_keys=True).encode()


def event_builder(
    *,
    site: str,
    device: str,
    type: str,
    reason: str,
    message: str,
    line: str | None,
    generation: int,
    details: dict[str, Any] | None = None,
    install: str | None = None,
) -> Callable[[int], bytes]:
    """`seq -> event_document(...)`, for `Outbox.put_event`, which picks the number."""

    def build(seq: int) -> bytes:
        return event_document(
            site=site,
            device=device,
            seq=seq,
            type=type,
            reason=reason,
            message=message,
            line=line,
            generation=generation,
            details=details,
            install=install,
        )

    return build
