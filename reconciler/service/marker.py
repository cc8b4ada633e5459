"""The publish marker: a retained, signed note of the last commit published in full.

`publish` clears it (retained, empty) before it sends any document and writes it after the
last PUBACK, naming the commit, the signing key, the artifact base and the `expires_at`
window it published with. So it is present only when the broker holds exactly what publishing
that commit produces: a publish cut off half-way, a change held by a freeze, a wiped or
restored-empty broker, another key or artifact base all leave it absent or different, and
the next publish runs the full pass. Devices cannot read it (`broker config` gives them their
own topics only); it is signed so that a client that may write it cannot make the publisher
skip devices.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from linefleet_core.signing import SigningKey, canonical_json, signed_by
from linefleet_core.wire import PROTOCOL, TOPIC_ROOT

MARKER_TOPIC = f"{TOPIC_ROOT}/_reconciler/published"
KIND = "Published"


@dataclass(frozen=True)
class Marker:
    commit: str
    generation: int
    key_id: str
    artifact_base: str
    expires_at: str | None

    def payload(self, key: SigningKey) -> bytes:
        return canonical_json(key.sign({"protocol": PROTOCOL, "kind": KIND, **asdict(self)}))

    @classmethod
    def parse(cls, raw: bytes | None, key: SigningKey) -> Marker | None:
        """The marker in `raw`, or None when absent, unreadable or not signed by `key`."""
        if not raw:
            return None
        try:
            doc: Any = json.loads(raw)
        except (ValueError, RecursionError):
            return None
        if not isinstance(doc, dict) or doc.get("kind") != KIND:
            return None
        if doc.get("protocol") != PROTOCOL or signed_by(doc, key.public) is not None:
            return None
        try:
            return cls(
                str(doc["commit"]),
                int(doc["generation"]),
                str(doc["key_id"]),
                str(doc["artifact_base"]),
                None if doc["expires_at"] is None else str(doc["expires_at"]),
            )
        except (KeyError, TypeError, ValueError):
            return None
