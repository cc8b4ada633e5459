"""`linefleet_core.forked`: a forked child runs its body and leaves by its exit code, whatever
the body does; every way out reaps it."""

from __future__ import annotations

import gc
import os
import signal
import time

import pytest

from linefleet_core.forked import Child, write_all


def read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def test_a_body_that_returns_exits_0_and_what_it_wrote_arrives_whole() -> None:
    child = Child.start(lambda fd: write_all(fd, b"x" * 300_000))  # past a pipe's buffer
    assert child is not None
    assert read_all(child.fd) == b"x" * 300_000
    assert child.wait(30) == 0
    assert child.pid == 0 and child.poll() == 0  # reaped, and says so again


def test_a_body_that_raises_exits_1_and_nothing_of_this_process_runs_there(
    capfd: pytest.CaptureFixture[str],
) -> None:
    def body(_fd: int) -> None:
        raise RuntimeError("in the child")

    child = Child.start(body)
    assert child is not None
    assert child.wait(30) == 1
    os.close(child.fd)
    # (the traceback of an exception leaving the child is not printed: os._exit at once)
    assert "in the child" not in capfd.readouterr().err


def test_ctrl_c_ends_the_child_at_once_instead_of_raising_there() -> None:
    """A KeyboardInterrupt inside the child would run this process's `finally` blocks and
    handlers there; the child takes the default action instead (it dies of the signal)."""

    def body(fd: int) -> None:
        os.write(fd, b".")
        time.sleep(60)

    child = Child.start(body)
    assert child is not None
    assert os.read(child.fd, 1) == b"."  # its body runs: its handlers are set
    os.kill(child.pid, signal.SIGINT)
    assert child.wait(30) == -signal.SIGINT
    os.close(child.fd)


def test_cancel_kills_and_reaps() -> None:
    child = Child.start(lambda fd: time.sleep(60))
    assert child is not None
    pid = child.pid
    child.cancel()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    child.cancel()  # twice is harmless
    assert child.poll() == -signal.SIGKILL
    os.close(child.fd)


def test_the_objects_of_the_fork_are_left_to_the_child_until_every_child_is_reaped() -> None:
    """A collection here would write into every object the child shares, and so copy every
    page of the heap: the objects of the fork are frozen while a child lives, not after."""
    gc.unfreeze()
    first = Child.start(lambda fd: time.sleep(60))
    second = Child.start(lambda fd: time.sleep(60))
    assert first is not None and second is not None
    assert gc.get_freeze_count() > 0
    first.cancel()
    assert gc.get_freeze_count() > 0  # (the second still shares them)
    second.cancel()
    assert gc.get_freeze_count() == 0
    os.close(first.fd)
    os.close(second.fd)
