"""The device's event document (docs/protocol.md section 7), one builder for every sender.

The agent emits events as it converges and serves; `linefleet edge override` emits an
inspector's correction from another process. Both go through the outbox, which assigns `seq`.
"""

from __future__ import annotations

import json
from typing import Any

from edge_puller.report import now_iso
from linefleet_core.wire import PROTOCOL

MAX_MESSAGE = 2000


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
) -> bytes:
    """The JSON bytes of one `Event` with sequence number `seq`, stamped now."""
    event = {
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
    return json.dumps(event, sort_keys=True).encode()
