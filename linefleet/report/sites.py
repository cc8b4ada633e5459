"""A large fleet's report, by site: counts and figures per site, the lines that need a look.

Above `DETAIL_LINES` lines the page stops drawing one table row and four charts per line
(10,000 lines would be a page nobody can read or open quickly). Instead each site gets one row
(`summarise`, pure): its lines and devices, how many lines are in each condition, the models it
serves and the candidates it tries, and its lines' latest metrics summed up (median and worst
p95 latency, median defect rate, worst drift). Lines that are not Synced are listed (`attention`)
so a problem is never hidden in a count.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from linefleet.report.data import CONDITIONS, LineView

DETAIL_LINES = 200
"""Up to this many lines, every line gets its row and charts; above, sites are summarised."""


@dataclass(frozen=True)
class SiteSummary:
    site: str
    lines: int
    devices: int
    conditions: tuple[tuple[str, int], ...]
    """(condition, lines), in `CONDITIONS` order, then any other condition by name."""
    serving: tuple[tuple[str, int], ...]
    """(model, lines serving it), most served first."""
    candidates: tuple[tuple[str, int], ...]
    """(`model stage`, lines trying it), most first."""
    reporting: int
    """Lines with a metrics window."""
    latency_p95_ms: tuple[float, float] | None
    """(median, worst) of the lines' latest p95 latency; None: no line measured one."""
    defect_rate: float | None
    """Median of the lines' latest defect rate."""
    drift_max: float | None
    attention: tuple[LineView, ...]
    """Lines not Synced, worst condition first."""


def _ranked(values: Iterable[str]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(Counter(values).items(), key=lambda kv: (-kv[1], kv[0])))


def severity(line: LineView) -> tuple[int, str]:
    """Sort key: the worst condition first (Failed, Degraded, Stale, Unknown, Progressing)."""
    order = ("Failed", "Degraded", "Stale", "Unknown", "Progressing")
    rank = order.index(line.condition) if line.condition in order else len(order)
    return rank, line.key


def summarise(lines: Iterable[LineView]) -> tuple[SiteSummary, ...]:
    """One summary per site, sites in name order."""
    by_site: dict[str, list[LineView]] = {}
    for line in lines:
        by_site.setdefault(line.site, []).append(line)
    return tuple(_site(site, by_site[site]) for site in sorted(by_site))


def _site(site: str, views: list[LineView]) -> SiteSummary:
    found = Counter(v.condition for v in views)
    names = [c for c in CONDITIONS if found[c]] + sorted(set(found) - set(CONDITIONS))
    latest = [v.history[-1] for v in views if v.history]
    latency = [p.latency_p95_ms for p in latest if p.latency_p95_ms is not None]
    defects = [p.defect_rate for p in latest if p.defect_rate is not None]
    drift = [p.drift_score for p in latest if p.drift_score is not None]
    devices = {d for v in views if v.device for d in v.device.split(", ")}
    return SiteSummary(
        site=site,
        lines=len({v.line for v in views}),
        devices=len(devices),
        conditions=tuple((name, found[name]) for name in names),
        serving=_ranked(v.serving for v in views if v.serving),
        candidates=_ranked(f"{v.candidate} {v.stage or ''}".strip() for v in views if v.candidate),
        reporting=len(latest),
        latency_p95_ms=(statistics.median(latency), max(latency)) if latency else None,
        defect_rate=statistics.median(defects) if defects else None,
        drift_max=max(drift) if drift else None,
        attention=tuple(sorted((v for v in views if v.condition != "Synced"), key=severity)),
    )
