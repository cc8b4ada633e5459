"""A report of a few hundred lines groups by site and lists only what needs a look."""

from __future__ import annotations

from linefleet.report.data import LineView, MetricPoint, ReportData
from linefleet.report.page import ATTENTION_ROWS, CHART_LINES, build_report
from linefleet.report.sites import DETAIL_LINES, summarise

NOW = 1_795_000_000.0
SITES = ("dresden", "pune", "toledo")
PER_SITE = 100  # 300 lines, one device each


def metrics(latency: float, defects: float, drift: float) -> tuple[MetricPoint, ...]:
    return (MetricPoint(NOW - 60, latency, defects, 10.0, drift),)


def fleet() -> tuple[LineView, ...]:
    """Dresden: all Synced; Pune: 30 Progressing, 2 Failed; Toledo: one Degraded canary."""
    views = []
    for site in SITES:
        for n in range(PER_SITE):
            condition = "Synced"
            if site == "pune" and n < 30:
                condition = "Progressing"
            if site == "pune" and n in (40, 41):
                condition = "Failed"
            if site == "toledo" and n == 7:
                condition = "Degraded"
            views.append(
                LineView(
                    site=site,
                    line=f"line-{n}",
                    condition=condition,
                    device=f"{site}-edge-{n}",
                    serving="surface-classifier@2" if n % 4 else "surface-classifier@1",
                    candidate="surface-classifier@3" if site == "toledo" and n < 3 else None,
                    stage="shadow" if site == "toledo" and n < 3 else None,
                    last_seen=NOW - 30,
                    history=metrics(10.0 + n, 0.01 * (n % 3), 0.1 if n != 99 else 0.9),
                )
            )
    return tuple(views)


def test_each_site_is_summed_up() -> None:
    dresden, pune, toledo = summarise(fleet())
    assert (dresden.site, dresden.lines, dresden.devices) == ("dresden", 100, 100)
    assert dresden.conditions == (("Synced", 100),) and dresden.attention == ()
    assert pune.conditions == (("Synced", 68), ("Progressing", 30), ("Failed", 2))
    assert [v.line for v in pune.attention[:2]] == ["line-40", "line-41"]  # worst first
    assert len(pune.attention) == 32
    assert dresden.serving == (("surface-classifier@2", 75), ("surface-classifier@1", 25))
    assert toledo.candidates == (("surface-classifier@3 shadow", 3),)
    assert toledo.reporting == 100
    assert toledo.latency_p95_ms == (59.5, 109.0)
    assert toledo.drift_max == 0.9
    assert toledo.defect_rate == 0.01


def test_the_page_groups_by_site_instead_of_a_row_and_charts_per_line() -> None:
    lines = fleet()
    assert len(lines) > DETAIL_LINES
    page = build_report(ReportData(generated_at=NOW, lines=lines))
    assert "300 lines at 3 sites" in page
    for site in SITES:
        assert f"<td><b>{site}</b></td>" in page  # one row per site (map and metrics)
    assert "Site pune: 32 of 100 lines not Synced" in page
    assert "Site toledo: 1 of 100 lines not Synced" in page
    assert "Site dresden:" not in page  # nothing to look at there
    assert f"and {32 - ATTENTION_ROWS} more lines not Synced at pune" in page
    assert page.count("<b>line-") == ATTENTION_ROWS + 1  # listed rows: pune's first 25, toledo's 1
    assert page.count('<article class="card">') == CHART_LINES  # charts only for the worst
    assert "pune/line-40" in page and "toledo/line-7" in page  # Failed and Degraded are charted
    assert "dresden/line-" not in page


def test_a_small_fleet_keeps_a_row_and_charts_per_line() -> None:
    lines = tuple(v for v in fleet() if v.site == "toledo")
    page = build_report(ReportData(generated_at=NOW, lines=lines))
    assert "lines at" not in page
    assert page.count('<article class="card">') == PER_SITE
