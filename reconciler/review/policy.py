"""Rollout policy on a change between two fleet revisions (the pull-request gate).

`check_change` collects every violation of the change base -> head: the rollout rules per
line (`reconciler.rules.rollout`: one stage at a time, evidence for promotions, freezes and
production windows), the canary limit per site, and immutable published versions
(`reconciler.review.published`). Pure: two specs and a clock value in, findings out.

The rules come from the *base* revision: its freeze periods, production windows, promotion
policy and canary limit. A pull request that deletes the active freeze (or lowers the
evidence bar, or raises the canary limit) and promotes a line is judged by the rules it
started from; the policy change itself is named in a warning (`rule_changes`) and takes
effect once merged.
"""

from __future__ import annotations

import datetime as dt

from linefleet_core.errors import Finding, Severity
from linefleet_core.spec import FleetSpec
from linefleet_core.validation import canary_limit, in_canary
from reconciler.review import published
from reconciler.rules.rollout import decide


def check_change(base: FleetSpec, head: FleetSpec, now: dt.datetime) -> list[Finding]:
    """Every policy violation of the change base -> head, located in the head files."""
    lines = [f for d in decide(base, head, now).values() for f in d.findings]
    # The base's canary limit, for the sites this change adds canaries to.
    before, after = in_canary(base), in_canary(head)
    grown = {site for site, group in after.items() if len(group) > len(before.get(site, []))}
    canary = canary_limit(head, base.policy.max_canary_lines_per_site, grown)
    return sorted(lines + canary + published.check_catalogue(base, head) + rule_changes(base, head))


def rule_changes(base: FleetSpec, head: FleetSpec) -> list[Finding]:
    """A warning for each change to the rules themselves (a site's calendar or approvers, the
    policy file): it takes effect once merged, never for the rollout changes beside it."""
    out: list[Finding] = []
    note = "; rollout changes in this pull request are judged by the base revision's rules"
    for key in sorted(set(base.sites) & set(head.sites)):
        was, now_ = base.sites[key], head.sites[key]
        changed = [
            name
            for name in ("freeze_periods", "production_windows", "approvers", "timezone")
            if getattr(was, name) != getattr(now_, name)
        ]
        if changed:
            doc = head.located(now_)
            out.append(
                doc.finding(
                    (changed[0],),
                    f"site {key}: changes {', '.join(changed)}{note}",
                    severity=Severity.WARNING,
                    code="rules",
                )
            )
    if base.policy != head.policy and id(head.policy) in head.docs:
        doc = head.located(head.policy)
        message = f"changes the fleet policy{note}"
        out.append(doc.finding((), message, severity=Severity.WARNING, code="rules"))
    return out
