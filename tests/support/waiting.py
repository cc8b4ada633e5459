"""The one way tests wait for something another thread or process does: poll a check until it
holds or the time is up (then a clear assertion naming what did not happen)."""

from __future__ import annotations

import time
from collections.abc import Callable

TIMEOUT = 30.0
"""Generous: the machine may be busy; a passing test never waits this long."""


def until(check: Callable[[], object], timeout: float = TIMEOUT, interval: float = 0.05) -> bool:
    """True as soon as `check()` is truthy; False if it is not within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def wait_for(
    what: str, check: Callable[[], object], timeout: float = TIMEOUT, interval: float = 0.05
) -> None:
    """Return once `check()` is truthy; fail with "timed out waiting for <what>" otherwise."""
    if not until(check, timeout, interval):
        raise AssertionError(f"timed out waiting for {what}")
