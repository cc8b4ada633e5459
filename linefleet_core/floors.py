"""Policy floors on a line's evidence, judged on the 95% confidence bound (pure).

    rate(3, 40)                              # Rate(value=0.075, low=0.026, high=0.199, ...)
    floor = floor_for(policy, "toledo/line-1")   # fleet-wide defaults, the line's own limits
    breaches(evidence, floor)                # ["escape rate 0.075 (95% CI 0.026-0.199) ..."]
    shortfalls(evidence, policy.promotion)   # sufficiency: interval too wide -> labels needed

A floor is met only when the whole interval is on the right side: the escape and false-reject
rates by their upper bound, each class's recall by its lower bound. So a small holdout cannot
prove a floor by luck; it is told how many more frames would make the interval narrow enough.
The trainer (`trainer promote`) and the pull-request gate (`validate --base`) both call these
functions, so they never disagree.
"""

from __future__ import annotations

import math

from linefleet_core.catalogue import LineEvidence, Rate
from linefleet_core.fleet import Floor, Policy, PromotionPolicy

Z95 = 1.959964


def wilson(count: int, of: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of `count` successes in `of` trials ((0, 1) when `of` is 0)."""
    if of <= 0:
        return 0.0, 1.0
    p = count / of
    z2 = z * z
    denom = 1 + z2 / of
    centre = (p + z2 / (2 * of)) / denom
    half = z * math.sqrt(p * (1 - p) / of + z2 / (4 * of * of)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def rate(count: int, of: int) -> Rate:
    low, high = wilson(count, of)
    value = count / of if of else 0.0
    return Rate(value=round(value, 4), low=round(low, 4), high=round(high, 4), count=count, of=of)


def width(r: Rate) -> float:
    return r.high - r.low


def frames_for_width(r: Rate, max_width: float) -> int:
    """The fewest frames at the observed rate whose interval is at most `max_width` wide."""
    p = r.value
    n = max(r.of, 1)
    while n < 1_000_000:
        low, high = wilson(round(p * n), n)
        if high - low <= max_width:
            return n
        n = max(n + 1, int(n * 1.05))
    return n


def floor_for(policy: Policy, line: str) -> Floor:
    """The fleet-wide floor with the line's own limits (field by field) on top."""
    base = policy.floors
    own = base.lines.get(line)
    merged = Floor(
        max_escape_rate=base.max_escape_rate,
        max_false_reject_rate=base.max_false_reject_rate,
        min_recall=dict(base.min_recall),
    )
    if own is None:
        return merged
    update: dict[str, object] = {
        name: getattr(own, name) for name in own.model_fields_set if name != "min_recall"
    }
    recall = {**merged.min_recall, **own.min_recall}
    return merged.model_copy(update={**update, "min_recall": recall})


def _show(r: Rate) -> str:
    return f"{r.value:.3f} (95% CI {r.low:.3f}-{r.high:.3f}, {r.count}/{r.of})"


def breaches(ev: LineEvidence, floor: Floor) -> list[str]:
    """Every floor the evidence does not prove it meets (empty: all met)."""
    out: list[str] = []
    for name, limit, got in (
        ("escape rate", floor.max_escape_rate, ev.escape_rate),
        ("false-reject rate", floor.max_false_reject_rate, ev.false_reject_rate),
    ):
        if limit is None:
            continue
        if got is None:
            out.append(f"the evidence has no {name}; the policy caps it at {limit:.3f}")
        elif got.of == 0:
            out.append(f"no holdout frames to measure the {name} (the policy caps it)")
        elif got.high > limit:
            out.append(f"{name} {_show(got)}: upper bound above the policy's {limit:.3f}")
    for cls, minimum in sorted(floor.min_recall.items()):
        got = ev.recall.get(cls)
        if got is None or got.of == 0:
            out.append(
                f"no holdout frames of `{cls}`: its recall cannot be shown to reach the "
                f"policy's {minimum:.3f}"
            )
        elif got.low < minimum:
            out.append(f"recall of `{cls}` {_show(got)}: lower bound below {minimum:.3f}")
    return out


def shortfalls(
    ev: LineEvidence, promotion: PromotionPolicy, holdout_share: float | None = None
) -> list[str]:
    """Why the intervals are too wide to judge on, with how many more frames are needed.

    `holdout_share` (e.g. 0.2) turns holdout frames into labelled frames in the message. The
    fixed floor (`min_holdout_frames`) is checked beside this by the callers.
    """
    out: list[str] = []
    for name, kind, got in (
        ("escape rate", "defect", ev.escape_rate),
        ("false-reject rate", "ok", ev.false_reject_rate),
    ):
        if got is None or width(got) <= promotion.max_interval_width + 1e-9:
            continue
        more = frames_for_width(got, promotion.max_interval_width) - got.of
        labels = (
            f" (about {math.ceil(more / holdout_share)} more labelled {kind} frames)"
            if (holdout_share)
            else ""
        )
        out.append(
            f"{name} interval {got.low:.3f}-{got.high:.3f} is {width(got):.3f} wide on "
            f"{got.of} {kind} frame(s); the policy allows {promotion.max_interval_width:.3f}: "
            f"needs {more} more {kind} frame(s) in the holdout{labels}"
        )
    return out


def incumbent_doubt(ev: LineEvidence) -> str | None:
    """Why the comparison with the incumbent cannot be trusted, or None."""
    if ev.incumbent_flag:
        return ev.incumbent_flag
    if ev.incumbent is not None and ev.incumbent <= 0.0:
        return f"the incumbent scored {ev.incumbent:.3f}: it cannot have been scored properly"
    return None


def judge(ev: LineEvidence, policy: Policy, line: str) -> tuple[list[str], list[str]]:
    """The gate's verdict on one line's evidence: (problems, warnings)."""
    problems = breaches(ev, floor_for(policy, line)) + shortfalls(ev, policy.promotion)
    doubt = incumbent_doubt(ev)
    warnings = (
        [f"{doubt}; the comparison with it proves nothing, the floors decide"] if doubt else []
    )
    return problems, warnings


def worse_than(new: float, old: float, tolerance: float) -> bool:
    """True when `new` is below `old` by more than the tolerance (the one comparison rule)."""
    return new + 1e-9 < old - tolerance


def replaces_better(
    new_ref: str, new: LineEvidence, old_ref: str, old: LineEvidence, tolerance: float
) -> str | None:
    """A candidate never replaces a better one: the reason if `new` scores below `old`."""
    if new.metric != old.metric or not worse_than(new.candidate, old.candidate, tolerance):
        return None
    return (
        f"{new_ref} ({new.metric} {new.candidate:.3f}) would replace {old_ref}, which scores "
        f"{old.candidate:.3f} on this line: a candidate never replaces a better one"
    )
