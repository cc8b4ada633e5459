"""The one way tests wait for something another thread or process does: poll a check until it
holds or the time is up (then a clear assertion naming what did not happen).

    wait_for("the report", lambda: broker.retained(topic))        # fails after TIMEOUT
    lines = wait_for("3 results", lambda: read(path) if len(read(path)) >= 3 else None)

A check may act as well as look (send a frame): it runs once per poll. Work that makes progress
happen between two looks (absorb the broker's messages) goes in `meanwhile`:

    wait_for("the report", lambda: key in rec.observations.devices,
             meanwhile=lambda: rec.absorb(session, 0.2))
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

TIMEOUT = 30.0
"""Generous: the machine may be busy; a passing test never waits this long."""


def poll(
    check: Callable[[], T | None],
    timeout: float = TIMEOUT,
    interval: float = 0.05,
    meanwhile: Callable[[], object] | None = None,
) -> T | None:
    """The first truthy `check()`, or None if none came within `timeout` seconds; between two
    checks `meanwhile()` runs (if given), then a pause of `interval` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if value := check():
            return value
        if time.monotonic() >= deadline:
            return None
        if meanwhile is not None:
            meanwhile()
        time.sleep(interval)


def until(check: Callable[[], object], timeout: float = TIMEOUT, interval: float = 0.05) -> bool:
    """True as soon as `check()` is truthy; False if it is not within `timeout` seconds."""
    return poll(check, timeout, interval) is not None


def wait_for(
    what: str,
    check: Callable[[], T | None],
    timeout: float = TIMEOUT,
    interval: float = 0.05,
    meanwhile: Callable[[], object] | None = None,
) -> T:
    """The first truthy `check()`; fail with "timed out waiting for <what>" if none comes."""
    value = poll(check, timeout, interval, meanwhile)
    if value is None:
        raise AssertionError(f"timed out waiting for {what}")
    return value
