"""Publish-time calendar: a change that lands in a freeze (or a held production window) waits.

The pull-request check judges a change at the time it is checked; a change checked before a
freeze and merged during it must still not reach the line. So `publish` and `reconcile` look
again, at publish time, at what each device runs now (the revision of its retained document)
against what it would get: a line whose change is not a rollback or an abort, on a site whose
calendar (in the revision being published) says "only rollbacks now", keeps its current
content and is reported as held. Rollbacks and aborts always pass; a device with no retained
document (nothing runs yet) is not held. Pure: specs and a clock in, decisions out.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from linefleet_core.spec import FleetSpec
from reconciler.rules import rollout


@dataclass(frozen=True)
class Hold:
    line: str
    reason: str

    def render(self) -> str:
        return f"{self.line} waits: {self.reason}"


def held_lines(live: FleetSpec, head: FleetSpec, now: dt.datetime) -> dict[str, Hold]:
    """The lines of `head` whose change from `live` may not land at `now`, by `site/line`."""
    out: dict[str, Hold] = {}
    for key, decision in rollout.decide(live, head, now).items():
        if key not in live.lines or key not in head.lines:
            continue  # a line that does not run yet (or no longer exists) is not a promotion
        if not any(step.move not in rollout.ROLLBACK_MOVES for step in decision.steps):
            continue  # unchanged, or only rollbacks and aborts: always allowed
        line = head.lines[key]
        site = head.sites.get(line.site)
        if site is None:
            continue
        hold = head.policy.hold_changes_during_production
        reasons = rollout.calendar(site, hold, now)
        if reasons:
            moves = ", ".join(step.text for step in decision.steps)
            out[key] = Hold(key, f"{moves}: {reasons[0]}")
    return out


def calendar_closed(head: FleetSpec, site: str, now: dt.datetime) -> bool:
    """True when only rollbacks may land on `site` at `now` (`held_lines` holds nothing on
    an open site, so a publisher need not read what its devices run)."""
    found = head.sites.get(site)
    hold = head.policy.hold_changes_during_production
    return found is not None and bool(rollout.calendar(found, hold, now))


def with_held(live: FleetSpec, head: FleetSpec, held: dict[str, Hold]) -> FleetSpec:
    """`head` with each held line as it is in `live` (what the device runs now)."""
    lines = {key: live.lines[key] if key in held else line for key, line in head.lines.items()}
    return dataclasses.replace(head, lines=lines)
