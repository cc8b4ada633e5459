"""Rollout policy on a change between two fleet revisions (being built: issue 2)."""

from __future__ import annotations

import datetime as dt

from linefleet_core.errors import Finding
from linefleet_core.spec import FleetSpec


def check_change(base: FleetSpec, head: FleetSpec, now: dt.datetime) -> list[Finding]:
    raise NotImplementedError("rollout policy checks are being built (issue 2)")
