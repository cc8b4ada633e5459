"""`reconciler.service.forkwork`: a computation in a forked child comes back whole, or not at
all (the child killed and reaped), whatever the child does."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.service.forkwork import THEN_NICE, Ends, Forked


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
    assert worker.wait(10) == 0
    assert gone(pid)


def fail() -> int:
    raise ValueError("broken")


def die() -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return 1


def leave() -> int:
    os._exit(0)  # ends "well" having written nothing


@pytest.mark.parametrize("work", [fail, die, leave], ids=["raises", "killed", "writes nothing"])
def test_a_child_that_fails_gives_nothing(work: Callable[[], int]) -> None:
    worker = Forked.start(work)
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


def test_then_runs_after_the_result_is_back_and_its_exit_code_says_how_it_went(
    tmp_path: Path,
) -> None:
    done = tmp_path / "then"

    def then() -> None:
        time.sleep(0.3)
        done.write_text(f"written by the child at niceness {os.nice(0)}")

    worker = Forked.start(lambda: 42, then)
    assert worker is not None
    assert worker.result(30) == 42
    assert not done.exists()  # the result came back first
    assert worker.wait(30) == 0
    # ... at a lower priority than this process: nobody waits for it
    assert done.read_text() == f"written by the child at niceness {min(os.nice(0) + THEN_NICE, 19)}"
    failing = Forked.start(lambda: 7, fail)
    assert failing is not None
    assert failing.result(30) == 7
    assert failing.wait(30) == 1
