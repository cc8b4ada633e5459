"""Which lines get the candidate (pure): per-line evidence against each line's incumbent.

    plan = plan_promotion(spec, candidate, scores)   # scores: line -> LineScores
    plan.included      # lines where the candidate matches or beats the incumbent (in shadow)
    plan.left_out      # every other line, with the reason
    render_body(plan)  # the pull request's markdown

A line is proposed when its taxonomy is the candidate's (or an earlier version of it), it
has at least the policy's minimum of holdout frames, it is not in canary with another
candidate, and the candidate scores at least `incumbent - tolerance` on the policy metric.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from linefleet_core.fleet import Line
from linefleet_core.spec import FleetSpec


@dataclass(frozen=True)
class CandidateInfo:
    model: str
    version: int
    taxonomy: str
    dataset: str
    run_id: str
    sha256: str
    size: int

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"


@dataclass(frozen=True)
class LineScores:
    """Candidate and incumbent on the same holdout of one line (policy metric)."""

    candidate: float
    incumbent: float | None
    incumbent_model: str
    holdout_frames: int


@dataclass(frozen=True)
class LineDecision:
    line: str
    scores: LineScores | None
    reason: str


@dataclass
class PromotionPlan:
    candidate: CandidateInfo
    metric: str
    tolerance: float
    included: list[LineDecision] = field(default_factory=list)
    left_out: list[LineDecision] = field(default_factory=list)

    @property
    def branch(self) -> str:
        return f"promote/{self.candidate.model}-{self.candidate.version}"

    @property
    def title(self) -> str:
        n = len(self.included)
        return f"Promote {self.candidate.ref} to shadow on {n} line(s)"


def eligible_lines(spec: FleetSpec, taxonomy: str) -> list[Line]:
    """Lines that may run a model of `taxonomy`: same taxonomy name, same or earlier version."""
    name, _, version = taxonomy.partition("@")
    out = []
    for line in spec.lines.values():
        l_name, _, l_version = line.taxonomy.partition("@")
        if l_name == name and int(l_version) <= int(version):
            out.append(line)
    return sorted(out, key=lambda line: line.key)


def plan_promotion(
    spec: FleetSpec, candidate: CandidateInfo, scores: Mapping[str, LineScores]
) -> PromotionPlan:
    policy = spec.policy.promotion
    plan = PromotionPlan(candidate, policy.metric, policy.tolerance)
    for line in eligible_lines(spec, candidate.taxonomy):
        got = scores.get(line.key)
        cand = line.rollout.candidate
        if got is None:
            plan.left_out.append(LineDecision(line.key, None, "no holdout frames in the dataset"))
        elif got.holdout_frames < policy.min_holdout_frames:
            reason = (
                f"only {got.holdout_frames} holdout frames (policy needs "
                f"{policy.min_holdout_frames})"
            )
            plan.left_out.append(LineDecision(line.key, got, reason))
        elif cand is not None and cand.stage == "canary":
            reason = f"{cand.model} is in canary there; not replaced"
            plan.left_out.append(LineDecision(line.key, got, reason))
        elif got.incumbent is not None and got.candidate < got.incumbent - policy.tolerance:
            reason = (
                f"worse than {got.incumbent_model}: {got.candidate:.3f} < "
                f"{got.incumbent:.3f} - {policy.tolerance:g}"
            )
            plan.left_out.append(LineDecision(line.key, got, reason))
        else:
            verdict = (
                "matches" if got.incumbent is None or got.candidate < got.incumbent else "beats"
            )
            plan.included.append(
                LineDecision(line.key, got, f"{verdict} {got.incumbent_model}; shadow")
            )
    return plan


def render_body(plan: PromotionPlan, taxonomy_note: str = "") -> str:
    c = plan.candidate
    out = [
        f"## Promotion of `{c.ref}` (candidate in `shadow`)",
        "",
        f"- dataset version: `{c.dataset}`",
        f"- taxonomy: `{c.taxonomy}`{taxonomy_note}",
        f"- MLflow run: `{c.run_id}`",
        f"- artifact: sha256 `{c.sha256}`, {c.size} bytes",
        f"- policy: {plan.metric}, tolerance {plan.tolerance:g}",
        "",
        "| line | candidate | incumbent | model | delta | holdout frames | decision |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in [*plan.included, *plan.left_out]:
        s = d.scores
        if s is None:
            out.append(f"| `{d.line}` | - | - | - | - | 0 | left out: {d.reason} |")
            continue
        inc = "-" if s.incumbent is None else f"{s.incumbent:.3f}"
        delta = "-" if s.incumbent is None else f"{s.candidate - s.incumbent:+.3f}"
        verdict = "proposed" if d in plan.included else "left out"
        out.append(
            f"| `{d.line}` | {s.candidate:.3f} | {inc} | `{s.incumbent_model}` | {delta} "
            f"| {s.holdout_frames} | {verdict}: {d.reason} |"
        )
    out.append("")
    if plan.left_out:
        names = ", ".join(f"`{d.line}`" for d in plan.left_out)
        out.append(f"Left out of this proposal: {names} (reasons above).")
    out.append(f"Plan: {len(plan.included)} line(s) to shadow, {len(plan.left_out)} left out.")
    return "\n".join(out) + "\n"
