"""A site's calendar: is a freeze period or a production window open at a given instant?

Freeze periods and production windows are written in the site's local time (naive times are
in `Site.timezone`; a freeze period may also carry an explicit offset). `now` is always an
aware instant, so the answer does not depend on the machine running the check.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from linefleet_core.fleet import FreezePeriod, ProductionWindow, Site

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def local_time(site: Site, now: dt.datetime) -> dt.datetime:
    """`now` as the site's wall-clock time (naive)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(zoneinfo.ZoneInfo(site.timezone)).replace(tzinfo=None)


def active_freeze(site: Site, now: dt.datetime) -> FreezePeriod | None:
    """The first freeze period of `site` that contains `now` ([start, end)), if any."""
    local = local_time(site, now)
    for period in site.freeze_periods:
        if _wall(site, period.start) <= local < _wall(site, period.end):
            return period
    return None


def open_window(site: Site, now: dt.datetime) -> ProductionWindow | None:
    """The first production window of `site` open at `now`, if any.

    A window whose end is earlier than its start runs past midnight: `fri 22:00-06:00` is
    open from Friday 22:00 to Saturday 06:00. A window whose start equals its end is open all
    day on its days.
    """
    local = local_time(site, now)
    today = WEEKDAYS[local.weekday()]
    yesterday = WEEKDAYS[(local.weekday() - 1) % 7]
    clock = local.strftime("%H:%M")
    for window in site.production_windows:
        if window.start < window.end:
            if today in window.days and window.start <= clock < window.end:
                return window
        elif window.start == window.end:
            if today in window.days:
                return window
        elif (today in window.days and clock >= window.start) or (
            yesterday in window.days and clock < window.end
        ):
            return window
    return None


def describe_freeze(site: Site, period: FreezePeriod) -> str:
    return (
        f"the freeze {period.reason!r} ({_fmt(period.start)} → {_fmt(period.end)} {site.timezone})"
    )


def period_dates(period: FreezePeriod) -> str:
    """`2026-12-23 to 2027-01-04` (times only when not midnight, offsets only when written)."""
    return f"{fmt_bound(period.start)} to {fmt_bound(period.end)}"


def fmt_bound(value: dt.datetime) -> str:
    """A freeze bound as written: the date, then the time unless midnight, then any offset."""
    text = value.strftime("%Y-%m-%d")
    if value.time() != dt.time(0, 0):
        text += value.strftime(" %H:%M")
    if value.tzinfo is not None:
        text += value.strftime(" %z")
    return text


def describe_window(site: Site, window: ProductionWindow) -> str:
    days = ",".join(window.days)
    return f"the production window {days} {window.start}-{window.end} ({site.timezone})"


def _wall(site: Site, value: dt.datetime) -> dt.datetime:
    """A freeze bound as the site's wall-clock time (naive bounds already are)."""
    if value.tzinfo is None:
        return value
    return value.astimezone(zoneinfo.ZoneInfo(site.timezone)).replace(tzinfo=None)


def _fmt(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M")
