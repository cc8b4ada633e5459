"""The rollout rules: what a change does to a line, and what it may do now.

For every line that differs between `base` and `head`, `decide()` names the steps the change
takes (new candidate, promote to canary, promote to production, rollback, abort, ...) and the
rules it breaks:

- a candidate moves shadow -> canary -> production one step at a time, and enters at shadow;
- a promotion (to canary or to production) needs evidence in the candidate's catalogue entry:
  `evaluation["site/line"]` in the policy's metric, against the line's serving model, on
  enough holdout frames, scoring at least the incumbent minus the policy tolerance;
- `rollout.previous` records the model a promotion replaced; only a promotion sets it;
- nothing but rollbacks and aborts may land during a site freeze, or (if the policy says so)
  while a production window is open (`calendar()`).

Rollbacks (serving back to `previous`, abort, canary back to shadow, a smaller canary) are
always allowed. Findings are located in the head revision's line file. This module is pure:
it reads two specs and a clock value and touches nothing.

Both halves of the reconciler read these rules, so they live beside them, not in either: the
pull-request check (`reconciler.review.policy.check_change`, with the base revision's rules)
and publish-time holds (`reconciler.service.holds`, with the live revision's).
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field

from linefleet_core import floors
from linefleet_core.catalogue import LineEvidence
from linefleet_core.errors import Finding, Severity
from linefleet_core.fleet import Candidate, Line, Site
from linefleet_core.spec import FleetSpec
from reconciler.rules import windows

Path = tuple[str | int, ...]
EPSILON = 1e-9


class Move(enum.StrEnum):
    ADD_LINE = "add-line"
    REMOVE_LINE = "remove-line"
    NEW_CANDIDATE = "new-candidate"
    REPLACE_CANDIDATE = "replace-candidate"
    TO_CANARY = "promote-canary"
    TO_PRODUCTION = "promote-production"
    REPLACE_SERVING = "replace-serving"
    CANARY_UP = "canary-up"
    CONFIG = "config"
    PREVIOUS = "previous"
    ROLLBACK = "rollback"
    ABORT = "abort"
    DEMOTE = "demote"
    CANARY_DOWN = "canary-down"


_CONFIG_FIELDS = ("name", "product", "taxonomy", "cameras")
ROLLBACK_MOVES = frozenset({Move.ROLLBACK, Move.ABORT, Move.DEMOTE, Move.CANARY_DOWN})


class Verdict(enum.StrEnum):
    UNCHANGED = "unchanged"
    ALLOWED = "allowed"
    ROLLBACK = "rollback"
    VIOLATION = "violation"


@dataclass(frozen=True)
class Step:
    move: Move
    text: str


@dataclass(frozen=True)
class LineDecision:
    key: str
    steps: tuple[Step, ...]
    findings: tuple[Finding, ...]

    @property
    def verdict(self) -> Verdict:
        if any(f.severity is Severity.ERROR for f in self.findings):
            return Verdict.VIOLATION
        if not self.steps:
            return Verdict.UNCHANGED
        if all(step.move in ROLLBACK_MOVES for step in self.steps):
            return Verdict.ROLLBACK
        return Verdict.ALLOWED


def decide(base: FleetSpec, head: FleetSpec, now: dt.datetime) -> dict[str, LineDecision]:
    """A decision for every line added, removed or changed, keyed and sorted by `site/line`."""
    out: dict[str, LineDecision] = {}
    for key in sorted(set(base.lines) | set(head.lines)):
        before, after = base.lines.get(key), head.lines.get(key)
        if before != after:
            out[key] = _Judge(base, head, key, before, after, now).decide()
    return out


@dataclass
class _Judge:
    base: FleetSpec
    head: FleetSpec
    key: str
    before: Line | None
    after: Line | None
    now: dt.datetime
    steps: list[Step] = field(default_factory=list)
    problems: list[tuple[Path, str]] = field(default_factory=list)
    warnings: list[tuple[Path, str]] = field(default_factory=list)

    def decide(self) -> LineDecision:
        if self.before is None and self.after is not None:
            self._added(self.after)
        elif self.after is None and self.before is not None:
            self.steps.append(Step(Move.REMOVE_LINE, f"remove the line ({self.before.product})"))
        elif self.before is not None and self.after is not None:
            self._changed(self.before, self.after)
        if any(step.move not in ROLLBACK_MOVES for step in self.steps):
            self._calendar()
        return LineDecision(self.key, tuple(self.steps), tuple(self._findings()))

    def step(self, move: Move, text: str) -> None:
        self.steps.append(Step(move, text))

    def problem(self, path: Path, message: str) -> None:
        self.problems.append((path, f"{self.key}: {message}"))

    # -- the kinds of change ------------------------------------------------------------------

    def _added(self, line: Line) -> None:
        self.step(Move.ADD_LINE, f"add the line, serving {line.rollout.serving}")
        cand = line.rollout.candidate
        if cand is not None:
            self.step(Move.NEW_CANDIDATE, f"new candidate {cand.model} in {cand.stage}")
            if cand.stage != "shadow":
                self._enters_at_shadow(cand)

    def _changed(self, before: Line, after: Line) -> None:
        b, h = before.rollout, after.rollout
        attempted = self._serving(before, after)
        self._candidate(None if attempted else b.candidate, h.candidate, h.serving)
        if h.previous != b.previous and not attempted and h.serving == b.serving:
            self._previous(b.previous, h.previous)
        if b.telemetry != h.telemetry:
            self.step(Move.CONFIG, "change the telemetry policy")
        # A line's taxonomy follows its serving model: it is part of a promotion or rollback.
        own = ("name", "product", "cameras") if h.serving != b.serving else _CONFIG_FIELDS
        fields = [name for name in own if getattr(before, name) != getattr(after, name)]
        if fields:
            self.step(Move.CONFIG, f"change {', '.join(fields)}")

    def _serving(self, before: Line, after: Line) -> bool:
        """Judge a change of the serving model; True if it promotes the base candidate."""
        b, h = before.rollout, after.rollout
        if h.serving == b.serving:
            return False
        if b.previous is not None and h.serving == b.previous:
            self.step(Move.ROLLBACK, f"roll back {b.serving} → {h.serving}")
            if h.previous not in (None, b.previous):
                self.problem(
                    ("rollout", "previous"),
                    f"after rolling back to {h.serving}, rollout.previous must be removed "
                    f"(found {h.previous}); only a promotion sets it",
                )
            return False
        cand = b.candidate
        if cand is None or cand.model != h.serving:
            self.step(Move.REPLACE_SERVING, f"serve {h.serving} instead of {b.serving}")
            self.problem(
                ("rollout", "serving"),
                f"serving changes {b.serving} → {h.serving}, but {h.serving} was not the "
                "canary candidate; add it as a candidate in shadow, then promote it to canary",
            )
            return False
        if cand.stage == "shadow":
            self.step(Move.TO_PRODUCTION, f"promote {h.serving} shadow → production")
            self.problem(
                ("rollout", "serving"),
                f"{h.serving} goes from shadow straight to production; promote to canary first",
            )
            return True
        summary = self._evidence(cand.model, b.serving, ("rollout", "serving"), "production")
        self.step(
            Move.TO_PRODUCTION,
            f"promote {h.serving} canary → production, replacing {b.serving}{summary}",
        )
        if h.previous != b.serving:
            self.problem(
                ("rollout", "previous"),
                f"rollout.previous must be {b.serving}, the model {h.serving} replaces, so the "
                f"edge keeps it for a rollback (found {h.previous or 'none'})",
            )
        return True

    def _candidate(self, old: Candidate | None, new: Candidate | None, serving: str) -> None:
        if old == new:
            return
        if new is None:
            assert old is not None
            self.step(Move.ABORT, f"abort candidate {old.model} (was in {old.stage})")
        elif old is None or old.model != new.model:
            if old is None:
                self.step(Move.NEW_CANDIDATE, f"new candidate {new.model} in {new.stage}")
            else:
                self.step(
                    Move.REPLACE_CANDIDATE,
                    f"replace candidate {old.model} ({old.stage}) with {new.model} ({new.stage})",
                )
                self._better_candidate(old.model, new.model)
            if new.stage != "shadow":
                self._enters_at_shadow(new)
        elif old.stage == "shadow" and new.stage == "canary":
            at: Path = ("rollout", "candidate", "stage")
            summary = self._evidence(new.model, serving, at, "canary")
            fraction = f" at {new.canary_fraction:.0%}" if new.canary_fraction else ""
            self.step(Move.TO_CANARY, f"promote {new.model} shadow → canary{fraction}{summary}")
        elif old.stage == "canary" and new.stage == "shadow":
            self.step(Move.DEMOTE, f"move {new.model} back from canary to shadow")
        else:
            was, will = old.canary_fraction or 0.0, new.canary_fraction or 0.0
            move = Move.CANARY_UP if will > was else Move.CANARY_DOWN
            self.step(move, f"canary share of {new.model} {was:.0%} → {will:.0%}")

    def _previous(self, old: str | None, new: str | None) -> None:
        if new is None:
            self.step(Move.PREVIOUS, f"forget the rollback target {old}")
            return
        self.step(Move.PREVIOUS, f"set the rollback target to {new}")
        self.problem(
            ("rollout", "previous"),
            f"rollout.previous changes {old or 'none'} → {new} without a promotion; it records "
            "the model a promotion replaced, so only a promotion sets it",
        )

    def _enters_at_shadow(self, cand: Candidate) -> None:
        self.problem(
            ("rollout", "candidate", "stage"),
            f"new candidate {cand.model} enters at {cand.stage}; a new candidate enters at "
            "shadow, then is promoted to canary",
        )

    # -- evidence -----------------------------------------------------------------------------

    def _evidence(self, ref: str, incumbent: str, at: Path, stage: str) -> str:
        """Check the promotion evidence; return a short summary for the plan."""
        mv = self.head.model_version(ref)
        if mv is None:
            return ""  # an unknown model is a validation error already
        promo = self.base.policy.promotion  # the bar the change started from
        ev = mv.evaluation.get(self.key)
        if ev is None:
            self.problem(
                at,
                f"no evaluation evidence for {ref} on this line; add evaluation['{self.key}'] "
                f"to version {mv.version} in the model catalogue before promoting to {stage}",
            )
            return ""
        checks = [
            (
                ev.metric == promo.metric,
                f"the evidence for {ref} is in {ev.metric}; the policy promotes on {promo.metric}",
            ),
            (
                ev.incumbent_model == incumbent,
                f"the evidence for {ref} compares against {ev.incumbent_model or 'no model'}; "
                f"the line serves {incumbent}, so evaluate against {incumbent}",
            ),
            (
                ev.holdout_frames >= promo.min_holdout_frames,
                f"the evidence for {ref} uses {ev.holdout_frames} holdout frames; the policy "
                f"needs at least {promo.min_holdout_frames}",
            ),
        ]
        if ev.incumbent is None:
            checks.append((False, f"the evidence for {ref} has no incumbent score"))
        elif ev.candidate + EPSILON < ev.incumbent - promo.tolerance:
            checks.append(
                (
                    False,
                    f"{ref} scores {ev.metric} {ev.candidate:.3f}, below {incumbent}'s "
                    f"{ev.incumbent:.3f} minus the tolerance {promo.tolerance:.3f} "
                    f"(needs at least {ev.incumbent - promo.tolerance:.3f})",
                )
            )
        for ok, message in checks:
            if not ok:
                self.problem(at, message)
        self._floors(ref, ev, at)
        score = "?" if ev.incumbent is None else f"{ev.incumbent:.3f}"
        return (
            f" ({ev.metric} {ev.candidate:.3f} vs {score} for {ev.incumbent_model or '?'}, "
            f"{ev.holdout_frames} frames)"
        )

    def _better_candidate(self, old: str, new: str) -> None:
        was, will = self.head.model_version(old), self.head.model_version(new)
        old_ev = was.evaluation.get(self.key) if was else None
        new_ev = will.evaluation.get(self.key) if will else None
        if old_ev is not None and new_ev is not None:
            tolerance = self.base.policy.promotion.tolerance  # the bar the change started from
            if reason := floors.replaces_better(new, new_ev, old, old_ev, tolerance):
                self.problem(("rollout", "candidate", "model"), reason)

    def _floors(self, ref: str, ev: LineEvidence, at: Path) -> None:
        """The policy's floors and sufficiency (`linefleet_core.floors`), beside the incumbent.

        The base revision's policy: a pull request that loosens the floors is judged by the
        floors it started from (the loosening takes effect once merged, `rule_changes`)."""
        problems, warnings = floors.judge(ev, self.base.policy, self.key)
        self.problems.extend((at, f"{self.key}: {ref}: {m}") for m in problems)
        self.warnings.extend((at, f"{self.key}: {ref}: {m}") for m in warnings)

    # -- calendar -----------------------------------------------------------------------------

    def _calendar(self) -> None:
        line = self.after or self.before
        assert line is not None
        # The calendar the change started from: a PR that deletes the active freeze is still
        # inside it. A site new in this change has no base calendar: its own applies.
        site: Site | None = self.base.sites.get(line.site) or self.head.sites.get(line.site)
        if site is None:
            return  # an unknown site is a validation error already
        at: Path = ("rollout",) if self._rollout_changed() else ()
        hold = self.base.policy.hold_changes_during_production
        for message in calendar(site, hold, self.now):
            self.problem(at, message)

    def _rollout_changed(self) -> bool:
        return (
            self.before is not None
            and self.after is not None
            and self.before.rollout != self.after.rollout
        )

    def _findings(self) -> list[Finding]:
        if self.after is not None:
            doc = self.head.located(self.after)
            found = [doc.finding(path, message, code="policy") for path, message in self.problems]
            return found + [
                doc.finding(path, message, severity=Severity.WARNING, code="policy")
                for path, message in self.warnings
            ]
        assert self.before is not None
        where = self.base.located(self.before).path
        return [Finding(where, 0, 0, "", message, code="policy") for _, message in self.problems]


def calendar(site: Site, hold_during_production: bool, now: dt.datetime) -> list[str]:
    """Why no change but a rollback may land on `site` at `now` (empty: it may)."""
    out = []
    local = windows.local_time(site, now).strftime("%a %Y-%m-%d %H:%M")
    freeze = windows.active_freeze(site, now)
    if freeze is not None:
        out.append(
            f"no changes during {windows.describe_freeze(site, freeze)}; only rollbacks and "
            f"aborts may land now ({local} at the site)"
        )
    window = windows.open_window(site, now)
    if window is not None and hold_during_production:
        out.append(
            f"{windows.describe_window(site, window)} is open and the policy holds changes "
            f"during production; only rollbacks and aborts may land now ({local} at the site)"
        )
    return out
