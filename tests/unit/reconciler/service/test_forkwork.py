"""`reconciler.service.forkwork`: a computation in a forked child comes back whole, or not at
all (the child killed and reaped), whatever the child does."""

from __future__ import annotations

import os
import signal
import time

import pytest

from reconciler.service.forkwork import Ends, Forked


def gone(pid: int) -> bool:
    """The process no longer exists (reaped: not even a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_the_result_comes_back_from_another_process() -> None:
    worker = Forked.start(lambda: (os.getpid(), [b"x" * 100_000] * 20))  # past a pipe's buffer
    assert worker is not None
    pid = worker.pid
    got = worker.result(30)
    assert got is not None
    child, rows = got
    assert child == pid != os.getpid()
    assert rows == [b"x" * 100_000] * 20
    assert gone(pid)


def fail() -> int:
    raise ValueError("broken")


def die() -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return 1


def leave() -> int:
    os._exit(0)  # ends "well" having written nothing


@pytest.mark.parametrize("work", [fail, die, leave], ids=["raises", "killed", "writes nothing"])
def test_a_child_that_fails_gives_nothing(work: object) -> None:
    worker = Forked.start(work)  # type: ignore[arg-type]
    assert worker is not None
    pid = worker.pid
    assert worker.result(30) is None
    assert gone(pid)


def test_a_child_that_does_not_finish_in_time_is_killed() -> None:
    worker = Forked.start(lambda: time.sleep(60))
    assert worker is not None
    pid = worker.pid
    started = time.monotonic()
    assert worker.result(0.3) is None
    assert time.monotonic() - started < 5
    assert gone(pid)


def test_cancel_kills_and_reaps_a_running_child() -> None:
    worker = Forked.start(lambda: time.sleep(60))
    assert worker is not None
    pid = worker.pid
    worker.cancel()
    assert gone(pid)
    worker.cancel()  # twice is harmless


def test_two_ends_meet_once_and_cover_every_item() -> None:
    ends = Ends(10)
    front, back = ends.front(3), ends.back(4)
    assert (front, back) == (range(0, 3), range(6, 10))
    assert ends.worker_started()
    assert ends.front(3) == range(3, 6)
    assert ends.back(4) is None  # met
    assert ends.front(3) is None


def test_the_worker_takes_what_this_process_leaves_across_the_fork() -> None:
    ends = Ends(100)
    assert ends.front(10) == range(0, 10)
    worker = Forked.start(lambda: [list(r) for r in iter(lambda: ends.back(7), None)])
    assert worker is not None
    taken = worker.result(30)
    assert taken is not None
    assert sorted(i for r in taken for i in r) == list(range(10, 100))
    assert ends.front(10) is None  # the worker's progress is seen here
