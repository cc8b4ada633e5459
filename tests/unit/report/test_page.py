"""`build_report` with hand-made data: escaping, empty sections, conditions, charts."""

from __future__ import annotations

from html.parser import HTMLParser

from linefleet.report.data import (
    Gates,
    LabelQueues,
    LineView,
    MetricPoint,
    ReportData,
    TimelineEntry,
)
from linefleet.report.page import build_report

NOW = 1_795_000_000.0
HOSTILE = '<script>alert("x")</script>"><img src=x onerror=alert(1)>'
OURS = {
    "html", "head", "meta", "title", "style", "body", "header", "main", "footer", "h1", "h2",
    "h3", "p", "div", "b", "span", "section", "article", "table", "thead", "tbody", "tr", "th",
    "td", "code", "figure", "figcaption", "svg", "rect", "text", "line", "polyline", "circle",
    "ol", "ul", "li", "br",
}  # fmt: skip


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [name for name, _ in attrs]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> Tags:
    tags = Tags()
    tags.feed(page)
    return tags


def points(*values: float) -> tuple[MetricPoint, ...]:
    return tuple(
        MetricPoint(NOW - 60 * (len(values) - i), v, 0.02, 12.5, v / 100, 0.97)
        for i, v in enumerate(values)
    )


def line(condition: str = "Synced", **extra: object) -> LineView:
    fields: dict[str, object] = {
        "site": "toledo",
        "line": "line-3",
        "condition": condition,
        "device": "toledo-edge-1",
        "serving": "surface-classifier@2",
        "last_seen": NOW - 30,
    }
    fields.update(extra)
    return LineView(**fields)  # type: ignore[arg-type]


def test_hostile_device_strings_are_text_never_markup() -> None:
    evil = line(
        "Failed",
        site=HOSTILE,
        line=HOSTILE,
        reason=HOSTILE,
        message=HOSTILE,
        device=HOSTILE,
        serving=HOSTILE,
        candidate=HOSTILE,
        stage=HOSTILE,
        history=points(40, 50),
    )
    weird = line(HOSTILE, line="line-4")
    entry = TimelineEntry(NOW, HOSTILE, HOSTILE, HOSTILE, (HOSTILE,))
    page = build_report(
        ReportData(NOW, (HOSTILE,), (evil, weird), (entry,), None, notes=(HOSTILE,))
    )

    found = parse(page)
    assert set(found.tags) <= OURS
    assert "script" not in found.tags and "img" not in found.tags
    assert not [a for a in found.attrs if a.startswith("on")]
    assert "<script" not in page and "<img" not in page
    assert HOSTILE in "".join(found.text)  # shown to the reader, as text
    assert 'class="badge cond-other"' in page  # an unknown condition is not a class name


def test_an_empty_fleet_and_missing_sources_say_so_plainly() -> None:
    page = build_report(ReportData(NOW, (), (), None, None))
    text = " ".join(parse(page).text)
    assert "The fleet has no lines yet." in text
    assert "No line has reported metrics yet." in text
    assert "No rollout history: pass --repo" in text
    assert "No label data: pass --labels" in text
    assert "from no sources" in text

    nothing = " ".join(parse(build_report(ReportData(NOW))).text)
    assert "No fleet data: pass --repo, --broker or --state-dir." in nothing


def test_each_condition_is_text_and_symbol_not_colour_alone() -> None:
    views = tuple(
        line(c, line=f"line-{i}")
        for i, c in enumerate(["Synced", "Progressing", "Degraded", "Failed", "Stale"])
    )
    page = build_report(ReportData(NOW, ("test",), views))
    for symbol, name in [("✓", "Synced"), ("↻", "Progressing"), ("▲", "Degraded")]:
        assert f'class="badge cond-{name.lower()}">{symbol} {name}</span>' in page
    assert 'class="badge cond-stale">◷ Stale</span>' in page
    assert 'class="badge cond-failed">✕ Failed</span>' in page


def test_fleet_map_groups_by_site_and_shows_serving_and_candidate_stage() -> None:
    views = (
        line(candidate="surface-classifier@3", stage="canary"),
        line(site="dresden", line="paint-1", serving="surface-classifier@1"),
    )
    page = build_report(ReportData(NOW, ("x",), views))
    assert page.index("Site dresden") < page.index("Site toledo")
    assert '<code>surface-classifier@3</code> <span class="stage">canary</span>' in page
    assert "30 s ago" in page


def test_metric_charts_draw_threshold_lines_with_labels() -> None:
    view = line(
        candidate="surface-classifier@3",
        stage="shadow",
        gates=Gates(max_latency_p95_ms=80.0, min_shadow_agreement=0.9, max_drift_score=0.3),
        history=points(40, 55, 61),
    )
    page = build_report(ReportData(NOW, ("x",), (view,)))
    assert page.count('class="threshold"') == 3
    assert ">max 80.0 ms</text>" in page
    assert ">min 90.0%</text>" in page
    assert ">max 0.30</text>" in page
    assert "<b>61.0 ms</b> now" in page
    assert page.count('class="series"') == 5


def test_lines_without_metrics_are_named_not_drawn() -> None:
    page = build_report(
        ReportData(
            NOW,
            ("x",),
            (line(history=(MetricPoint(NOW, 3.0, 0.0, None, 0.0),)), line(line="line-9")),
        )
    )
    assert "No metrics reported yet for: toledo/line-9." in page
    assert page.count('<svg class="chart"') == 4  # one line: latency, defects, fps, drift


def test_agreement_without_shadow_comparisons_is_no_value_not_a_breach() -> None:
    """The candidate was dropped at 50% agreement; windows since have no comparisons (None)."""
    gates = Gates(min_shadow_agreement=0.9)
    dropped = MetricPoint(NOW - 120, 3.0, 0.02, 12.5, 0.01, 0.5)
    since = tuple(MetricPoint(NOW - 60 + i, 3.0, 0.02, 12.5, 0.01) for i in range(2))
    page = build_report(ReportData(NOW, ("x",), (line(gates=gates, history=(dropped, *since)),)))
    assert "below the" not in page
    assert "<b>—</b> now (no candidate)" in page
    waiting = line(candidate="surface-classifier@3", stage="shadow", gates=gates, history=since)
    page = build_report(ReportData(NOW, ("x",), (waiting,)))
    assert "below the" not in page and "no data" in page  # nothing measured: an empty chart


def test_label_queues_are_counted() -> None:
    queues = LabelQueues(reviews=2, qa=5, audits=0, confirmed_since_dataset=7)
    page = build_report(ReportData(NOW, ("x",), None, (), queues))
    text = " ".join(parse(page).text)
    assert "Inspector overrides waiting for QA 5" in text
    assert "Overrides confirmed since the last dataset version (the start) 7" in text
    assert "No commit has changed a line's rollout yet." in text


def test_a_breached_threshold_is_said_in_words() -> None:
    view = line(gates=Gates(max_drift_score=0.3), history=points(20, 25))
    drifting = LineView(**{**view.__dict__, "history": (MetricPoint(NOW, 40.0, 0.01, 10.0, 0.45),)})
    page = build_report(ReportData(NOW, ("x",), (drifting,)))
    assert "Drift score <b>0.45</b> now" in page
    assert '<span class="breach">— above the 0.30 limit</span>' in page
    calm = build_report(ReportData(NOW, ("x",), (view,)))
    assert "breach" not in calm.split("</style>")[1]


def test_sync_and_health_are_two_columns_and_no_frames_is_not_zero() -> None:
    """Issue 12: a line above its drift gate showed only "Synced"; no frames read as 0 ms."""
    from linefleet.report.history import point
    from linefleet_core.wire import LineMetrics

    quiet = point(NOW, LineMetrics(window_seconds=60, frames=0))
    assert quiet.latency_p95_ms is None and quiet.drift_score is None
    view = line(
        "Degraded",
        sync="Synced",
        health="Degraded",
        message="max_drift_score: 0.62 > 0.3",
        history=(*points(40, 50), quiet),
    )
    page = build_report(ReportData(NOW, (), (view,), None, None))
    text = " ".join(parse(page).text)
    assert "Sync Health" in text
    assert "Synced Degraded" in text
    assert text.count("now (no frames)") == 3  # latency, defect rate, drift: not 0
