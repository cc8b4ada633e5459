"""Health gates → rollback written to git, so git and the fleet never fight.

`plan_rollbacks()` is pure: from the fleet and its status it proposes, per line, either dropping a
canary candidate whose metrics break the health gates (or that a device already rolled
back), or restoring `previous` when the serving model itself fails its gates. `execute()`
turns one action into a branch, a one-file commit (a round-trip YAML edit: comments and
formatting stay) and a pull request through the forge (`linefleet_forge.proposal`),
idempotently: proposing the same rollback twice updates the same pull request.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linefleet_core.placement import line_path
from linefleet_core.spec import FleetSpec
from linefleet_core.yamledit import edit
from linefleet_forge.base import Forge
from linefleet_forge.proposal import Proposal, Proposed, propose
from reconciler.service.fleetstatus import FleetStatus

LABELS = ("linefleet", "rollback")


class Kind(enum.StrEnum):
    DROP_CANDIDATE = "drop-candidate"
    RESTORE_PREVIOUS = "restore-previous"


@dataclass(frozen=True)
class Rollback:
    """A rollback to propose as a pull request: which line, how, and the evidence."""

    line: str  # site/line
    kind: Kind
    model: str  # the model being rolled back
    target: str  # the model the line keeps (or returns to)
    evidence: tuple[str, ...]  # "device: gate value > threshold", sorted

    @property
    def branch(self) -> str:
        return f"linefleet/rollback/{self.line.replace('/', '-')}"

    def summary(self) -> str:
        what = "drop canary" if self.kind is Kind.DROP_CANDIDATE else "restore"
        return f"rollback({self.line}): {what} {self.model} -> {self.target}"


def plan_rollbacks(spec: FleetSpec, status: FleetStatus) -> list[Rollback]:
    """One action per line whose model under test failed on at least one device."""
    evidence: dict[str, list[str]] = {}
    by_hand: set[str] = set()
    for dev in status.devices:
        for row in dev.lines:
            found = [f"{dev.device}: {v.render()}" for v in row.violations]
            reported = row.reported
            if reported is not None and reported.phase == "rolled_back":
                line = spec.lines.get(row.line)
                previous = line.rollout.previous if line is not None else None
                if previous is not None and reported.serving == previous != row.desired_serving:
                    by_hand.add(row.line)
                    found.append(f"{dev.device}: rolled back by hand to {previous}")
                else:
                    found.append(f"{dev.device}: rolled back on the device")
            if found:
                evidence.setdefault(row.line, []).extend(found)
    actions = []
    for key, items in sorted(evidence.items()):
        line = spec.lines.get(key)
        if line is None:
            continue
        rollout = line.rollout
        if key in by_hand and rollout.previous is not None:  # git follows the operator
            actions.append(
                Rollback(
                    key, Kind.RESTORE_PREVIOUS, rollout.serving, rollout.previous, tuple(items)
                )
            )
        elif rollout.candidate is not None and rollout.candidate.stage == "canary":
            actions.append(
                Rollback(
                    key, Kind.DROP_CANDIDATE, rollout.candidate.model, rollout.serving, tuple(items)
                )
            )
        elif rollout.candidate is None and rollout.previous is not None:
            actions.append(
                Rollback(
                    key, Kind.RESTORE_PREVIOUS, rollout.serving, rollout.previous, tuple(items)
                )
            )
    return actions


def apply(root: Path, action: Rollback) -> None:
    """Edit the line file under `root`: only the rollout keys the action names change."""

    def change(doc: Any) -> None:
        rollout = doc["rollout"]
        if action.kind is Kind.DROP_CANDIDATE:
            rollout.pop("candidate", None)
        else:
            rollout["serving"] = action.target
            rollout.pop("previous", None)

    edit(root / line_path(action.line), change)


def body(action: Rollback) -> str:
    what = (
        f"Drop the canary candidate `{action.model}`; the line keeps serving `{action.target}`."
        if action.kind is Kind.DROP_CANDIDATE
        else f"Serve `{action.target}` again instead of `{action.model}`."
    )
    lines = [
        f"**Automatic rollback of `{action.line}`** by the linefleet reconciler.",
        "",
        what,
        "",
        "Health-gate evidence reported by the devices:",
        "",
        *(f"- {item}" for item in action.evidence),
        "",
        "Devices already protect themselves (they switch back at once); merging this makes",
        "git agree with the fleet. Close it to keep the rollout as it is.",
    ]
    return "\n".join(lines)


def execute(remote: str, base: str, action: Rollback, forge: Forge) -> Proposed | None:
    proposal = Proposal(
        branch=action.branch,
        base=base,
        message=f"{action.summary()}\n\n" + "\n".join(action.evidence),
        title=action.summary(),
        body=body(action),
        labels=LABELS,
    )
    return propose(remote, proposal, lambda root: apply(root, action), forge)
