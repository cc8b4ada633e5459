"""The fleet map rows from real reconciler status objects; the metrics history file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from linefleet.report.data import ReportData
from linefleet.report.fleetview import line_views
from linefleet.report.history import read_history, record
from linefleet.report.page import build_report
from linefleet_core.errors import FindingsError
from linefleet_core.wire import LineMetrics, LineStatus, ReportedState
from reconciler.service.fleetstatus import fleet_status
from reconciler.service.observed import Observations
from tests.support import minifleet

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


def report(
    device: str, at: dt.datetime, *lines: tuple[str, float], site: str = "toledo"
) -> ReportedState:
    return ReportedState(
        protocol=1,
        kind="ReportedState",
        site=site,
        device=device,
        at=at,
        lines=[
            LineStatus(
                line=key,
                phase="serving",
                serving="surface-classifier@2",
                metrics=LineMetrics(
                    window_seconds=60, frames=600, latency_p95_ms=p95, drift_score=0.1
                ),
            )
            for key, p95 in lines
        ],
    )


def observed(*reports: ReportedState) -> Observations:
    obs = Observations()
    for rep in reports:
        item = obs.device(rep.site, rep.device)
        item.reported = rep
        item.last_seen = rep.at.timestamp()
        item.online = True
    return obs


def served(*reports: ReportedState) -> dict[str, frozenset[str]]:
    """The lines each device serves in the fleet repository (what it may report on)."""
    return {f"{r.site}/{r.device}": frozenset(ln.line for ln in r.lines) for r in reports}


def test_a_device_not_heard_from_is_shown_stale_never_synced() -> None:
    old = report("toledo-edge-1", NOW - dt.timedelta(hours=2), ("toledo/line-1", 40.0))
    status = fleet_status({}, observed(old), NOW.timestamp(), assigned=served(old))
    views = line_views(status, None, {}, now=NOW.timestamp(), desired_known=False)

    assert views is not None and [(v.key, v.condition) for v in views] == [
        ("toledo/line-1", "Stale")
    ]
    assert "last seen 2.0h ago" in views[0].message
    page = build_report(ReportData(NOW.timestamp(), ("x",), views))
    assert 'class="badge cond-stale">◷ Stale</span>' in page
    assert "Synced" not in page.split("<main>")[1].split("<footer>")[0]


def test_without_desired_state_a_fresh_device_is_unknown_not_progressing() -> None:
    fresh = report("toledo-edge-1", NOW, ("toledo/line-1", 40.0))
    status = fleet_status({}, observed(fresh), NOW.timestamp(), assigned=served(fresh))
    [view] = line_views(status, None, {}, now=NOW.timestamp(), desired_known=False) or ()
    assert (view.condition, view.reason) == ("Unknown", "DesiredNotRead")
    assert view.serving == "surface-classifier@2"
    assert [p.latency_p95_ms for p in view.history] == [40.0]
    assert view.history[0].frames_per_s == 10.0


def test_repo_lines_nobody_reported_are_unknown_with_their_rollout_and_thresholds() -> None:
    spec, _ = minifleet.load_docs(minifleet.documents())
    fresh = report("toledo-edge-1", NOW, ("toledo/line-1", 40.0))
    status = fleet_status({}, observed(fresh), NOW.timestamp(), assigned=served(fresh))
    views = {
        v.key: v
        for v in line_views(status, spec, {}, now=NOW.timestamp(), desired_known=False) or ()
    }

    assert sorted(views) == ["dresden/line-1", "dresden/line-2", "toledo/line-1", "toledo/line-2"]
    canary = views["dresden/line-1"]
    assert (canary.condition, canary.candidate, canary.stage) == (
        "Unknown",
        "surface-classifier@3",
        "canary",
    )
    assert (
        canary.device == "dresden-edge-1" and canary.message == "no device has reported this line"
    )
    assert views["toledo/line-1"].gates is not None
    assert views["toledo/line-1"].candidate == "surface-classifier@3"  # from the repo: not reported


def test_no_source_at_all_is_none() -> None:
    assert line_views(None, None, {}, now=NOW.timestamp()) is None


def test_history_round_trip_merges_the_current_report(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    earlier = [
        report("toledo-edge-1", NOW - dt.timedelta(minutes=m), ("toledo/line-1", 30.0 + m))
        for m in (20, 10)
    ]
    assert record(path, earlier) == 2
    history = read_history(path)
    assert [p.latency_p95_ms for p in history[("toledo/line-1", "toledo-edge-1")]] == [50.0, 40.0]

    now = report("toledo-edge-1", NOW, ("toledo/line-1", 35.0))
    status = fleet_status({}, observed(now), NOW.timestamp(), assigned=served(now))
    [view] = line_views(status, None, history, now=NOW.timestamp(), desired_known=False) or ()
    assert [p.latency_p95_ms for p in view.history] == [50.0, 40.0, 35.0]


def test_a_bad_history_line_is_named_by_number(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    good = report("toledo-edge-1", NOW, ("toledo/line-1", 35.0)).model_dump_json()
    path.write_text(f'{good}\n\n{{"protocol": 1}}\nnot json\n')
    with pytest.raises(FindingsError) as caught:
        read_history(path)
    text = str(caught.value)
    assert f"{path}:3:" in text and "kind" in text
    assert f"{path}:4:" in text


def test_a_rollback_degrades_its_own_line_not_the_devices_other_lines() -> None:
    rep = report("toledo-edge-1", NOW, ("toledo/line-1", 40.0), ("toledo/line-2", 41.0))
    rolled = rep.model_copy(
        update={"lines": [rep.lines[0].model_copy(update={"phase": "rolled_back"}), rep.lines[1]]}
    )
    status = fleet_status({}, observed(rolled), NOW.timestamp(), assigned=served(rolled))
    assert status.devices[0].condition.type.value == "Degraded"  # the device as a whole
    views = line_views(status, None, {}, now=NOW.timestamp(), desired_known=False) or ()
    assert {v.key: v.condition for v in views} == {
        "toledo/line-1": "Degraded",
        "toledo/line-2": "Unknown",
    }


def test_two_devices_on_one_line_keep_their_own_series() -> None:
    one = report("toledo-edge-1", NOW, ("toledo/line-2", 40.0))
    two = report("toledo-edge-2", NOW, ("toledo/line-2", 90.0))
    status = fleet_status({}, observed(one, two), NOW.timestamp(), assigned=served(one, two))
    views = line_views(status, None, {}, now=NOW.timestamp(), desired_known=False) or ()
    assert sorted((v.device, v.history[0].latency_p95_ms) for v in views) == [
        ("toledo-edge-1", 40.0),
        ("toledo-edge-2", 90.0),
    ]
