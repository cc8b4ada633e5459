"""Which lines get the candidate (pure): per-line evidence against each line's incumbent.

    plan = plan_promotion(spec, candidate, scores)   # scores: line -> LineScores
    plan.included      # lines where the candidate matches or beats the incumbent (in shadow)
    plan.left_out      # every other line, with the reason
    render_body(plan)  # the pull request's markdown

A line is proposed when its taxonomy is the candidate's (or an earlier version of it), it
has at least the policy's minimum of holdout frames, it is not in canary with another
candidate, the candidate meets the policy's floors on the confidence bound with intervals
narrow enough to judge (`linefleet_core.floors`), it scores at least `incumbent - tolerance`
on the policy metric, and at least `rival - tolerance` where another candidate is in shadow
(a candidate never replaces a better one). An incumbent that cannot have been scored
properly (0, or no holdout frames of a class it knows) is flagged in the evidence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from linefleet_core import floors
from linefleet_core.catalogue import LineEvidence
from linefleet_core.fleet import Line
from linefleet_core.spec import FleetSpec
from trainer.evidence import FactoryRates, show


@dataclass(frozen=True)
class CandidateInfo:
    model: str
    version: int
    taxonomy: str
    dataset: str
    run_id: str
    sha256: str
    size: int
    trained_on: tuple[str, ...] = ()
    """The `site/line` keys whose frames trained the candidate."""

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
    rates: FactoryRates | None = None
    """The candidate's escapes, false rejects and recall on the line's holdout."""
    incumbent_flag: str | None = None
    rival: str | None = None
    """Another candidate in shadow on the line, scored on the same holdout."""
    rival_score: float | None = None


@dataclass(frozen=True)
class LineDecision:
    line: str
    scores: LineScores | None
    reason: str
    evidence: LineEvidence | None = None


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


def line_evidence(metric: str, dataset: str, got: LineScores) -> LineEvidence:
    """The catalogue's evidence entry for one line (the type the gate reads back)."""
    r = got.rates
    flag = got.incumbent_flag
    if flag is None and got.incumbent is not None and got.incumbent <= 0.0:
        flag = f"{got.incumbent_model} scored {got.incumbent:.3f} on this line's holdout"
    return LineEvidence.model_validate(
        {
            "metric": metric,
            "candidate": got.candidate,
            "incumbent": got.incumbent,
            "incumbent_model": got.incumbent_model,
            "holdout_frames": max(1, got.holdout_frames),
            "dataset": dataset,
            "escape_rate": r.escape if r else None,
            "false_reject_rate": r.false_reject if r else None,
            "recall": r.recall if r else {},
            "confusion": [list(row) for row in r.confusion] if r else None,
            "incumbent_flag": flag,
        }
    )


def plan_promotion(
    spec: FleetSpec,
    candidate: CandidateInfo,
    scores: Mapping[str, LineScores],
    holdout_share: float | None = None,
) -> PromotionPlan:
    policy = spec.policy.promotion
    plan = PromotionPlan(candidate, policy.metric, policy.tolerance)
    for line in eligible_lines(spec, candidate.taxonomy):
        got = scores.get(line.key)
        if got is None:
            plan.left_out.append(LineDecision(line.key, None, "no holdout frames in the dataset"))
            continue
        ev = line_evidence(policy.metric, candidate.dataset, got)
        reason = _left_out(spec, line, got, ev, holdout_share)
        if reason is not None:
            plan.left_out.append(LineDecision(line.key, got, reason, ev))
            continue
        verdict = "matches" if got.incumbent is None or got.candidate < got.incumbent else "beats"
        plan.included.append(
            LineDecision(line.key, got, f"{verdict} {got.incumbent_model}; shadow", ev)
        )
    return plan


def _left_out(
    spec: FleetSpec, line: Line, got: LineScores, ev: LineEvidence, holdout_share: float | None
) -> str | None:
    """Why the line does not get the candidate, or None."""
    policy = spec.policy.promotion
    cand = line.rollout.candidate
    if got.holdout_frames < policy.min_holdout_frames:
        return (
            f"only {got.holdout_frames} holdout frames (policy needs {policy.min_holdout_frames})"
        )
    if cand is not None and cand.stage == "canary":
        return f"{cand.model} is in canary there; not replaced"
    broken = floors.breaches(ev, floors.floor_for(spec.policy, line.key))
    if broken:
        return "breaks the policy's floors: " + "; ".join(broken)
    short = floors.shortfalls(ev, policy, holdout_share)
    if short:
        return "not enough evidence yet: " + "; ".join(short)
    if got.incumbent is not None and floors.worse_than(
        got.candidate, got.incumbent, policy.tolerance
    ):
        return (
            f"worse than {got.incumbent_model}: {got.candidate:.3f} < "
            f"{got.incumbent:.3f} - {policy.tolerance:g}"
        )
    if (
        got.rival is not None
        and got.rival_score is not None
        and floors.worse_than(got.candidate, got.rival_score, policy.tolerance)
    ):
        return (
            f"worse than {got.rival}, the candidate in shadow there: {got.candidate:.3f} < "
            f"{got.rival_score:.3f} - {policy.tolerance:g}; a candidate never replaces a "
            "better one"
        )
    return None


def render_body(plan: PromotionPlan, taxonomy_note: str = "") -> str:
    c = plan.candidate
    trained = ", ".join(f"`{k}`" for k in c.trained_on) or "not recorded"
    out = [
        f"## Promotion of `{c.ref}` (candidate in `shadow`)",
        "",
        f"- trained on: {trained}",
        f"- dataset version: `{c.dataset}`",
        f"- taxonomy: `{c.taxonomy}`{taxonomy_note}",
        f"- MLflow run: `{c.run_id}`",
        f"- artifact: sha256 `{c.sha256}`, {c.size} bytes",
        f"- policy: {plan.metric}, tolerance {plan.tolerance:g}; escape and false-reject "
        "rates with 95% Wilson intervals, floors judged on the bound",
        "",
        "| line | candidate | incumbent | model | delta | holdout frames | escape rate | "
        "false-reject rate | decision |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for d in [*plan.included, *plan.left_out]:
        s = d.scores
        if s is None:
            out.append(f"| `{d.line}` | - | - | - | - | 0 | - | - | left out: {d.reason} |")
            continue
        inc = "-" if s.incumbent is None else f"{s.incumbent:.3f}"
        if d.evidence is not None and d.evidence.incumbent_flag:
            inc += " (flagged)"
        delta = "-" if s.incumbent is None else f"{s.candidate - s.incumbent:+.3f}"
        escape = show(s.rates.escape) if s.rates else "-"
        reject = show(s.rates.false_reject) if s.rates else "-"
        verdict = "proposed" if d in plan.included else "left out"
        foreign = "" if not c.trained_on or d.line in c.trained_on else " (not trained on)"
        out.append(
            f"| `{d.line}`{foreign} | {s.candidate:.3f} | {inc} | `{s.incumbent_model}` | "
            f"{delta} | {s.holdout_frames} | {escape} | {reject} | {verdict}: {d.reason} |"
        )
    out.append("")
    out += _recall_table(plan)
    flagged = [
        d for d in [*plan.included, *plan.left_out] if d.evidence and d.evidence.incumbent_flag
    ]
    for d in flagged:
        assert d.evidence is not None
        out.append(
            f"- flagged `{d.line}`: {d.evidence.incumbent_flag}; the comparison with the "
            "incumbent proves nothing there, the floors decide"
        )
    if flagged:
        out.append("")
    if plan.left_out:
        names = ", ".join(f"`{d.line}`" for d in plan.left_out)
        out.append(f"Left out of this proposal: {names} (reasons above).")
    out.append(f"Plan: {len(plan.included)} line(s) to shadow, {len(plan.left_out)} left out.")
    return "\n".join(out) + "\n"


def _recall_table(plan: PromotionPlan) -> list[str]:
    """Recall per class (with intervals) and the confusion matrix of every scored line."""
    rows = [d for d in [*plan.included, *plan.left_out] if d.scores and d.scores.rates]
    if not rows:
        return []
    classes = sorted({cls for d in rows for cls in d.scores.rates.recall}, key=str)  # type: ignore[union-attr]
    out = [
        "Recall per class on each line's holdout (95% interval):",
        "",
        "| line | " + " | ".join(f"`{cls}`" for cls in classes) + " |",
        "|---|" + "---|" * len(classes),
    ]
    for d in rows:
        recall = d.scores.rates.recall  # type: ignore[union-attr]
        cells = [show(recall[cls]) if cls in recall else "-" for cls in classes]
        out.append(f"| `{d.line}` | " + " | ".join(cells) + " |")
    out += [
        "",
        "<details><summary>Confusion matrices (rows: truth, columns: prediction)</summary>",
        "",
    ]
    for d in rows:
        matrix = d.scores.rates.confusion  # type: ignore[union-attr]
        out.append(f"`{d.line}`: " + " / ".join(" ".join(str(v) for v in row) for row in matrix))
        out.append("")
    out += ["</details>", ""]
    return out
