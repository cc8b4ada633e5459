"""Desired-state documents for tests: the envelope every builder of ours shares."""

from __future__ import annotations

from typing import Any

from linefleet_core.signing import content_hash


def desired_envelope(
    site: str, device: str, generation: int, spec: dict[str, Any]
) -> dict[str, Any]:
    """An unsigned desired state around `spec`, with a correct content hash (docs/protocol.md)."""
    return {
        "protocol": 1,
        "kind": "DesiredState",
        "site": site,
        "device": device,
        "generation": generation,
        "commit": f"{generation:040x}",
        "content_hash": content_hash(spec),
        "spec": spec,
    }
