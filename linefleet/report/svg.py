"""Small inline SVG line charts: one series over time, an optional threshold line (pure).

The chart carries its own `<title>` and `aria-label`, and a threshold is labelled in text, so
nothing depends on colour alone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 300, 120
LEFT, RIGHT, TOP, BOTTOM = 44, 10, 12, 22


@dataclass(frozen=True)
class Series:
    title: str
    unit: str
    points: Sequence[tuple[float, float]]
    """(epoch seconds, value), oldest first."""
    threshold: float | None = None
    threshold_label: str = "limit"
    """`max` or `min`: which side of the threshold is a breach."""

    @property
    def breached(self) -> bool:
        if self.threshold is None or not self.points:
            return False
        latest = self.points[-1][1]
        if self.threshold_label == "min":
            return latest < self.threshold
        return latest > self.threshold


def fmt(value: float, unit: str = "") -> str:
    if unit == "%":
        return f"{value * 100:.1f}%"
    if abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".rstrip()


def _clock(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%m-%d %H:%M")


def line_chart(series: Series) -> str:
    """An SVG element; an empty series draws a labelled empty frame."""
    label = escape(f"{series.title} over time", quote=True)
    head = (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{label}"><title>{label}</title>'
    )
    frame = (
        f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" '
        f'height="{HEIGHT - TOP - BOTTOM}" class="plot"/>'
    )
    if not series.points:
        note = f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" class="empty">no data</text>'
        return head + frame + note + "</svg>"
    times = [t for t, _ in series.points]
    values = [v for _, v in series.points]
    low = min([*values, *([series.threshold] if series.threshold is not None else [])])
    high = max([*values, *([series.threshold] if series.threshold is not None else [])])
    low = min(low, 0.0)
    if high <= low:
        high = low + 1.0
    high += (high - low) * 0.08
    if series.unit == "%" and max(values) <= 1.0:
        high = min(high, 1.0)  # a share never needs an axis past 100%
    t0, t1 = min(times), max(times)
    span = t1 - t0 or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + (plot_w * (t - t0) / span if t1 > t0 else plot_w / 2)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - (v - low) / (high - low))

    parts = [head, frame]
    for value in (low, high):
        parts.append(
            f'<text x="{LEFT - 4}" y="{y(value) + 4:.1f}" class="axis" text-anchor="end">'
            f"{escape(fmt(value, series.unit))}</text>"
        )
    if t1 > t0:
        parts.append(
            f'<text x="{LEFT}" y="{HEIGHT - 6}" class="axis">{escape(_clock(t0))}</text>'
            f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 6}" class="axis" text-anchor="end">'
            f"{escape(_clock(t1))} UTC</text>"
        )
    else:  # one report: one time, under its dot
        parts.append(
            f'<text x="{x(t0):.1f}" y="{HEIGHT - 6}" class="axis" text-anchor="middle">'
            f"{escape(_clock(t0))} UTC</text>"
        )
    if series.threshold is not None:
        ty = y(series.threshold)
        text = escape(f"{series.threshold_label} {fmt(series.threshold, series.unit)}")
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}" '
            f'class="threshold"/><text x="{WIDTH - RIGHT - 2}" y="{ty - 3:.1f}" '
            f'class="threshold-label" text-anchor="end">{text}</text>'
        )
    coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in series.points)
    if len(series.points) > 1:
        parts.append(f'<polyline points="{coords}" class="series"/>')
    last_t, last_v = series.points[-1]
    parts.append(f'<circle cx="{x(last_t):.1f}" cy="{y(last_v):.1f}" r="3" class="dot"/>')
    parts.append("</svg>")
    return "".join(parts)
