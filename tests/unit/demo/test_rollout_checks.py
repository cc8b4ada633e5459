"""What the demo waits for, read from `linefleet status --format json` rows."""

from __future__ import annotations

from typing import Any

import pytest

from linefleet.demo.edges import converged
from linefleet.demo.rollout import _applied, _fell_back


def _row(condition: str, desired: str, applied: str | None, phase: str | None) -> dict[str, Any]:
    return {
        "condition": condition,
        "desired": {"content_hash": desired},
        "applied": None if applied is None else {"content_hash": applied},
        "lines": [{"line": "toledo/paint-1", "phase": phase}],
    }


@pytest.mark.parametrize(
    ("row", "is_converged", "is_applied", "fell_back"),
    [
        (_row("Synced", "h2", "h2", "serving"), True, True, False),
        (_row("Progressing", "h2", "h1", "serving"), False, False, False),
        (_row("Unknown", "h2", None, None), False, False, False),
        # Degraded by a gate (drift) but running what git says: converged, not a fallback
        (_row("Degraded", "h2", "h2", "serving"), True, True, False),
        # the device dropped the candidate itself
        (_row("Degraded", "h2", "h2", "rolled_back"), True, True, True),
        # stale: nothing heard; never counted as converged
        (_row("Stale", "h2", "h2", "serving"), False, True, False),
    ],
)
def test_wait_conditions(
    row: dict[str, Any], is_converged: bool, is_applied: bool, fell_back: bool
) -> None:
    assert converged(row) is is_converged
    assert _applied(row) is is_applied
    assert _fell_back(row) is fell_back
