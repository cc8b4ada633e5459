"""`build_report(ReportData) -> str`: the whole self-contained HTML page (pure).

Every value that came from a device, the repo or the label store passes through `esc()`;
the only markup is ours. No scripts, no external resources: the page renders offline.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable
from html import escape

from linefleet.report.data import (
    CONDITIONS,
    EscapeView,
    LabelQueues,
    LineView,
    MetricPoint,
    ReportData,
    TimelineEntry,
)
from linefleet.report.sites import DETAIL_LINES, SiteSummary, severity, summarise
from linefleet.report.style import CSS
from linefleet.report.svg import Series, fmt, line_chart

SYMBOLS = {
    "Synced": "✓",
    "Progressing": "↻",
    "Degraded": "▲",
    "Failed": "✕",
    "Stale": "◷",
    "Unknown": "?",
}


ATTENTION_ROWS = 25
"""A large fleet: lines not Synced listed per site (the rest are counted)."""
CHART_LINES = 12
"""A large fleet: charts drawn for at most this many lines (the worst not Synced)."""


def esc(value: object) -> str:
    return escape(str(value), quote=True)


def when(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def ago(at: float | None, now: float) -> str:
    if at is None:
        return "never"
    age = max(0.0, now - at)
    if age < 120:
        return f"{age:.0f} s ago"
    if age < 7200:
        return f"{age / 60:.0f} min ago"
    if age < 172800:
        return f"{age / 3600:.1f} h ago"
    return f"{age / 86400:.0f} days ago"


def badge(condition: str) -> str:
    css = condition.lower() if condition in CONDITIONS else "other"
    symbol = SYMBOLS.get(condition, "•")
    return f'<span class="badge cond-{css}">{symbol} {esc(condition)}</span>'


def nodata(text: str) -> str:
    return f'<p class="nodata">{esc(text)}</p>'


def _summary(lines: tuple[LineView, ...] | None) -> str:
    if not lines:
        return ""
    found = Counter(line.condition for line in lines)
    names = [c for c in CONDITIONS if found[c]] + sorted(set(found) - set(CONDITIONS))
    tiles = "".join(
        f'<div class="tile"><b>{found[c]}</b>{badge(c)}</div>' for c in names if found[c]
    )
    return f'<div class="tiles" aria-label="lines by condition">{tiles}</div>'


def _model_cell(line: LineView) -> str:
    return f"<code>{esc(line.serving)}</code>" if line.serving else "—"


def _candidate_cell(line: LineView) -> str:
    if not line.candidate:
        return "—"
    stage = f' <span class="stage">{esc(line.stage)}</span>' if line.stage else ""
    return f"<code>{esc(line.candidate)}</code>{stage}"


def _fleet_map(lines: tuple[LineView, ...] | None, now: float) -> str:
    if lines is None:
        return nodata("No fleet data: pass --repo, --broker or --state-dir.")
    if not lines:
        return nodata("The fleet has no lines yet.")
    if len(lines) > DETAIL_LINES:
        return _sites_map(summarise(lines), now)
    by_site: dict[str, list[LineView]] = {}
    for line in sorted(lines, key=lambda ln: (ln.site, ln.line)):
        by_site.setdefault(line.site, []).append(line)
    return "".join(
        f'<section class="card"><h3>Site {esc(site)}</h3>{_line_table(rows, now)}</section>'
        for site, rows in by_site.items()
    )


def _line_table(lines: Iterable[LineView], now: float) -> str:
    rows = []
    for line in lines:
        note = line.message or line.reason
        rows.append(
            f"<tr><td><b>{esc(line.line)}</b></td><td>{badge(line.condition)}</td>"
            f"<td>{esc(line.sync or '—')}</td><td>{esc(line.health or '—')}</td>"
            f"<td>{_model_cell(line)}</td><td>{_candidate_cell(line)}</td>"
            f"<td>{esc(line.device or '—')}</td><td>{esc(ago(line.last_seen, now))}</td>"
            f'<td class="note">{esc(note)}</td></tr>'
        )
    return (
        "<table><thead><tr><th>Line</th><th>Condition</th><th>Sync</th><th>Health</th>"
        "<th>Serving model</th>"
        "<th>Candidate</th><th>Device</th><th>Last report</th><th>Note</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _counted(items: tuple[tuple[str, int], ...], shown: int = 3) -> str:
    if not items:
        return "—"
    cells = [f"<code>{esc(name)}</code> ({n})" for name, n in items[:shown]]
    if len(items) > shown:
        cells.append(f"+{len(items) - shown} more")
    return "<br>".join(cells)


def _sites_map(sites: tuple[SiteSummary, ...], now: float) -> str:
    """A large fleet: one row per site, then each site's lines that are not Synced."""
    rows = []
    for site in sites:
        conditions = " ".join(f"{badge(c)} {n}" for c, n in site.conditions)
        rows.append(
            f"<tr><td><b>{esc(site.site)}</b></td><td>{site.lines}</td><td>{site.devices}</td>"
            f"<td>{conditions}</td><td>{_counted(site.serving)}</td>"
            f"<td>{_counted(site.candidates)}</td><td>{len(site.attention)}</td></tr>"
        )
    total = sum(site.lines for site in sites)
    out = [
        f'<p class="muted">{total} lines at {len(sites)} sites: each site is summed up in one '
        f"row (a fleet over {DETAIL_LINES} lines); lines that are not Synced are listed below "
        "it. `linefleet status` lists every device.</p>"
        '<section class="card"><table><thead><tr><th>Site</th><th>Lines</th><th>Devices</th>'
        "<th>Conditions (lines)</th><th>Serving</th><th>Candidates</th><th>Not Synced</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    ]
    for site in sites:
        if not site.attention:
            continue
        more = len(site.attention) - ATTENTION_ROWS
        tail = f'<p class="muted">and {more} more lines not Synced at {esc(site.site)}.</p>'
        out.append(
            f'<section class="card"><h3>Site {esc(site.site)}: {len(site.attention)} of '
            f"{site.lines} lines not Synced</h3>"
            f"{_line_table(site.attention[:ATTENTION_ROWS], now)}{tail if more > 0 else ''}"
            "</section>"
        )
    return "".join(out)


def _sites_metrics(lines: tuple[LineView, ...]) -> str:
    """A large fleet's metrics: per site, the latest windows summed up; charts only for the
    worst lines needing a look."""
    sites = summarise(lines)
    rows = []
    for site in sites:
        latency = site.latency_p95_ms
        rows.append(
            f"<tr><td><b>{esc(site.site)}</b></td><td>{site.reporting} of {site.lines}</td>"
            f"<td>{'—' if latency is None else esc(fmt(latency[0], 'ms'))}</td>"
            f"<td>{'—' if latency is None else esc(fmt(latency[1], 'ms'))}</td>"
            f"<td>{'—' if site.defect_rate is None else esc(fmt(site.defect_rate, '%'))}</td>"
            f"<td>{'—' if site.drift_max is None else esc(fmt(site.drift_max, ''))}</td></tr>"
        )
    out = [
        '<section class="card"><table><thead><tr><th>Site</th><th>Lines reporting</th>'
        "<th>p95 latency (median)</th><th>p95 latency (worst)</th>"
        "<th>Defect rate (median)</th><th>Drift (worst)</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    ]
    worst = sorted((v for s in sites for v in s.attention if v.history), key=severity)
    if worst:
        shown = worst[:CHART_LINES]
        out.append(
            f'<p class="muted">Charts of the {len(shown)} worst lines not Synced (of '
            f"{len(worst)} with metrics):</p>"
        )
        out += [_line_metrics(line) for line in shown]
    return "".join(out)


def _series(
    history: Iterable[MetricPoint], pick: Callable[[MetricPoint], float | None]
) -> list[tuple[float, float]]:
    return [(p.at, v) for p in history for v in [pick(p)] if v is not None]


def _figure(series: Series, absent: str | None = None) -> str:
    """A chart and its caption; `absent`: why the latest window has no value (no breach then)."""
    latest = f"<b>{esc(fmt(series.points[-1][1], series.unit))}</b> now" if series.points else ""
    if absent is not None:
        latest = f"<b>—</b> now ({esc(absent)})"
    elif series.breached and series.threshold is not None:
        side = "below" if series.threshold_label == "min" else "above"
        limit = fmt(series.threshold, series.unit)
        latest += f' <span class="breach">— {side} the {esc(limit)} limit</span>'
    return (
        f"<figure>{line_chart(series)}<figcaption>{esc(series.title)} {latest}</figcaption>"
        "</figure>"
    )


def _line_metrics(line: LineView) -> str:
    gates = line.gates
    h = line.history
    charts = [
        Series(
            "Latency p95",
            "ms",
            _series(h, lambda p: p.latency_p95_ms),
            None if gates is None else gates.max_latency_p95_ms,
            "max",
        ),
        Series("Defect rate", "%", _series(h, lambda p: p.defect_rate)),
        Series("Frames per second", "fps", _series(h, lambda p: p.frames_per_s)),
        Series(
            "Drift score",
            "",
            _series(h, lambda p: p.drift_score),
            None if gates is None else gates.max_drift_score,
            "max",
        ),
    ]
    no_frames = "no frames" if h and h[-1].latency_p95_ms is None else None
    figures = [_figure(s, None if s.unit == "fps" else no_frames) for s in charts]
    agreement = _series(h, lambda p: p.shadow_agreement)
    if agreement or line.candidate:
        floor = None if gates is None else gates.min_shadow_agreement
        absent = None
        if h and h[-1].shadow_agreement is None:  # no shadow comparisons in the latest window
            absent = "no candidate" if not line.candidate else "no candidate frames yet"
        figures.append(_figure(Series("Shadow agreement", "%", agreement, floor, "min"), absent))
    who = f" · {esc(line.device)}" if line.device else ""
    if line.candidate:
        who += f" — candidate <code>{esc(line.candidate)}</code>"
    return (
        f'<article class="card"><h3>{esc(line.key)} {badge(line.condition)}{who}</h3>'
        f'<div class="charts">{"".join(figures)}</div></article>'
    )


def _metrics(lines: tuple[LineView, ...] | None) -> str:
    if lines is None:
        return nodata("No metrics: pass --broker, --state-dir or --history.")
    if len(lines) > DETAIL_LINES:
        return _sites_metrics(lines)
    measured = [ln for ln in sorted(lines, key=lambda ln: ln.key) if ln.history]
    silent = [ln.key for ln in sorted(lines, key=lambda ln: ln.key) if not ln.history]
    out = [_line_metrics(line) for line in measured]
    if not measured:
        out.append(nodata("No line has reported metrics yet."))
    elif silent:
        out.append(f'<p class="muted">No metrics reported yet for: {esc(", ".join(silent))}.</p>')
    return "".join(out)


def _timeline(entries: tuple[TimelineEntry, ...] | None) -> str:
    if entries is None:
        return nodata("No rollout history: pass --repo (the fleet git repository).")
    if not entries:
        return nodata("No commit has changed a line's rollout yet.")
    items = []
    for entry in entries:
        changes = "".join(f"<li>{esc(change)}</li>" for change in entry.changes)
        approved = f" · approved by {esc(entry.approved_by)}" if entry.approved_by else ""
        items.append(
            f"<li><b>{esc(when(entry.at))}</b> · <code>{esc(entry.commit[:10])}</code> · "
            f"{esc(entry.author)}{approved}<br>{esc(entry.subject)}<ul>{changes}</ul></li>"
        )
    return f'<ol class="timeline">{"".join(items)}</ol>'


def _labels(queues: LabelQueues | None) -> str:
    if queues is None:
        return nodata("No label data: pass --labels (the trainer's label store).")
    since = "the start" if queues.last_dataset_at is None else when(queues.last_dataset_at)
    rows = [
        ("Re-review tasks (taxonomy changes)", queues.reviews),
        ("Inspector overrides waiting for QA", queues.qa),
        ("New annotators' labels waiting for audit", queues.audits),
        (
            f"Overrides confirmed since the last dataset version ({since})",
            queues.confirmed_since_dataset,
        ),
    ]
    body = "".join(f"<tr><td>{esc(name)}</td><td><b>{n}</b></td></tr>" for name, n in rows)
    return (
        '<section class="card"><table><thead><tr><th>Queue</th><th>Items</th></tr></thead>'
        f"<tbody>{body}</tbody></table></section>"
    )


def _escapes(rows: tuple[EscapeView, ...] | None) -> str:
    if rows is None:
        return nodata("No label data: pass --labels (the trainer's label store).")
    if not rows:
        return nodata("No audit samples from the edge in the label store yet.")
    body = []
    for r in rows:
        if r.labelled:
            rate = f"{r.defects / r.labelled:.3f} ({r.low:.3f}-{r.high:.3f})"
        else:
            rate = "none labelled yet"
        limit = "-" if r.limit is None else f"{r.limit:.3f}"
        verdict = badge("Degraded") + " past the gate" if r.broken else ""
        body.append(
            f"<tr><td>{esc(r.line)}</td><td>{r.sampled}</td><td>{r.labelled}</td>"
            f"<td>{r.defects}</td><td><b>{esc(rate)}</b></td><td>{limit} {verdict}</td></tr>"
        )
    return (
        '<section class="card"><p class="muted">Frames the serving model called ok, sampled '
        "at random on the device and labelled by people: the share that is defective, with its "
        "95% Wilson interval. The gate breaks when even the lower bound is past the limit.</p>"
        "<table><thead><tr><th>Line</th><th>Sampled</th><th>Labelled</th><th>Defective</th>"
        "<th>Field escape rate</th><th>Limit</th></tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></section>"
    )


def build_report(data: ReportData) -> str:
    now = data.generated_at
    sources = "; ".join(data.sources) or "no sources"
    notes = "".join(f'<p class="muted">{esc(note)}</p>' for note in data.notes)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Linefleet fleet report</title>"
        f"<style>{CSS}</style></head><body>"
        "<header><h1>Linefleet fleet report</h1>"
        f'<p class="meta">Generated {esc(when(now))} · from {esc(sources)}</p>'
        f"{_summary(data.lines)}</header><main>{notes}"
        f'<h2 id="fleet">Fleet map</h2>{_fleet_map(data.lines, now)}'
        f'<h2 id="metrics">Line metrics over time</h2>{_metrics(data.lines)}'
        f'<h2 id="rollouts">Rollout timeline</h2>{_timeline(data.timeline)}'
        f'<h2 id="labels">Label queues</h2>{_labels(data.labels)}'
        f'<h2 id="escapes">Field escapes (audit samples)</h2>{_escapes(data.escapes)}'
        "</main><footer>Conditions: ✓ Synced runs what git says · ↻ Progressing is converging · "
        "▲ Degraded rolled back or past a health gate · ✕ Failed cannot converge · "
        "◷ Stale has not reported within 3 heartbeats. Dashed lines are health-gate limits."
        "</footer></body></html>\n"
    )
