"""Freezes and production windows at an instant (`reconciler.rules.windows`), in site-local time."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from linefleet_core.fleet import Site
from reconciler.rules import windows


def _site(**fields: Any) -> Site:
    return Site(kind="Site", id="s", name="S", timezone="Europe/Berlin", **fields)


# Berlin is UTC+1 in winter: 2026-11-06 is a Friday.
@pytest.mark.parametrize(
    ("utc", "open_"),
    [
        ("2026-11-06T20:59", False),  # Fri 21:59
        ("2026-11-06T21:00", True),  # Fri 22:00
        ("2026-11-06T23:30", True),  # Sat 00:30, still Friday's shift
        ("2026-11-07T04:59", True),  # Sat 05:59
        ("2026-11-07T05:00", False),  # Sat 06:00: the shift ended
        ("2026-11-07T21:30", False),  # Sat 22:30: no shift starts on Saturday
        ("2026-11-08T23:30", True),  # Mon 00:30: Sunday's shift
    ],
)
def test_production_window_across_midnight(utc: str, open_: bool) -> None:
    site = _site(
        production_windows=[
            {"days": ["mon", "tue", "wed", "thu", "fri", "sun"], "start": "22:00", "end": "06:00"}
        ]
    )
    now = dt.datetime.fromisoformat(utc).replace(tzinfo=dt.UTC)
    assert (windows.open_window(site, now) is not None) is open_


def test_freeze_bounds_are_site_local_and_half_open() -> None:
    site = _site(
        freeze_periods=[{"start": "2026-12-24T00:00", "end": "2026-12-27T00:00", "reason": "x"}]
    )
    at = dt.datetime(2026, 12, 23, 23, 0, tzinfo=dt.UTC)  # 00:00 on the 24th in Berlin
    assert windows.active_freeze(site, at) is not None
    assert windows.active_freeze(site, at - dt.timedelta(minutes=1)) is None
    assert windows.active_freeze(site, dt.datetime(2026, 12, 26, 23, 0, tzinfo=dt.UTC)) is None
