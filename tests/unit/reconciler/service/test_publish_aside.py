"""`publish.Aside`: the caches a full pass writes are written by the forked worker once its
documents are back, or by the publisher when there is no worker or it fails, once either way;
and not at all by the publisher when the publish itself failed."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.service.forkwork import Forked, spare_core
from reconciler.service.publish import Aside

pytestmark = pytest.mark.skipif(not spare_core(), reason="one core: no worker is forked")


def writer(path: Path) -> Callable[[], None]:
    """Work that notes which process did it."""

    def work() -> None:
        with path.open("a") as out:
            out.write(f"{os.getpid()}\n")

    return work


def fail() -> None:
    raise OSError("disk full")


def test_the_worker_does_it_and_this_process_does_not(tmp_path: Path) -> None:
    log = tmp_path / "log"
    worker = Forked.start(lambda: 1, writer(log))
    assert worker is not None
    child = worker.pid
    assert worker.result(30) == 1
    aside = Aside(writer(log), worker)
    aside.meanwhile()
    aside.close()
    assert log.read_text().split() == [str(child)]


def test_a_worker_that_fails_at_it_leaves_it_to_this_process(tmp_path: Path) -> None:
    log = tmp_path / "log"
    worker = Forked.start(lambda: 1, fail)
    assert worker is not None and worker.result(30) == 1
    aside = Aside(writer(log), worker)
    aside.meanwhile()
    aside.close()
    aside.close()
    assert log.read_text().split() == [str(os.getpid())]


def test_without_a_worker_it_is_done_here_once(tmp_path: Path) -> None:
    log = tmp_path / "log"
    aside = Aside(writer(log))
    aside.meanwhile()
    aside.close()
    assert log.read_text().split() == [str(os.getpid())]


def test_after_a_failed_publish_this_process_does_not_do_it(tmp_path: Path) -> None:
    """(`publish` calls `meanwhile` only when it got as far as sending, or found nothing to.)"""
    log = tmp_path / "log"
    worker = Forked.start(lambda: 1, fail)
    assert worker is not None and worker.result(30) == 1
    Aside(writer(log), worker).close()
    assert not log.exists()
