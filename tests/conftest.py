"""How `pytest -n auto --dist loadgroup` (`make test`) spreads the suite over the workers.

- Tests that share an expensive fixture run on one worker, so it is built once: every test of a
  module with a module-scoped fixture (a trained workspace, a RabbitMQ cluster), and every test
  on the session's NATS cluster or on its RabbitMQ node (the `broker` parameter,
  tests/support/brokers.py). Spread test by test, both workers built them: a RabbitMQ node is
  10 s and more to boot, the NATS cluster ~7 s, the two-node RabbitMQ cluster ~20 s.
  pytest-xdist 3.8's own loadgroup no longer groups anything under pytest 9.2 (it renames node
  ids through an attribute pytest stopped reading: pytest-xdist issue 1386), so the groups are
  computed here, from the node ids, by a scheduler of our own.
- The tests marked `slow` (tens of seconds each: the demo, the soak subset, ...) come first,
  so a worker starts them while the other works through the short ones, instead of one of them
  starting last and leaving a core idle while it finishes.
Nothing is left out or skipped here: only the order and the placement change.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_BROKER = re.compile(r"\[(?:.*-)?(nats-cluster|rabbitmq)(?:-.*)?\]$")
"""A test on a session broker: its `broker` parameter (alone or among others) in the id."""
MODULE_FIXTURE = re.compile(r"scope=\"(?:module|package)\"")


@functools.cache
def has_module_fixture(path: str) -> bool:
    """Whether the test file, or a conftest.py beside it or above it, defines a module- or
    package-scoped fixture (read as text: the scheduler sees node ids, not fixtures)."""
    file = ROOT / path
    sources = [file, *(d / "conftest.py" for d in file.parents if d.is_relative_to(ROOT))]
    return any(s.is_file() and MODULE_FIXTURE.search(s.read_text()) for s in sources)


def scope_of(nodeid: str) -> str:
    """The unit of work `nodeid` is sent to a worker in: a group, or the test alone."""
    if match := SHARED_BROKER.search(nodeid):
        return f"broker:{match.group(1)}"
    path = nodeid.split("::")[0]
    return f"module:{path}" if has_module_fixture(path) else nodeid


@pytest.hookimpl(optionalhook=True)  # an xdist hook: unknown under `-p no:xdist`
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

    return SharedFixtureScheduling(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: slow first
