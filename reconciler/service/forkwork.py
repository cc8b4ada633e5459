"""Run one pure computation in a forked child, on the machine's other core.

The child inherits the parent's memory as it is at the fork (a validated fleet of 10,000
devices costs it nothing to get), runs `work()`, writes the pickled result to a pipe and ends
with `os._exit`: it runs no other code of the parent's (no `atexit`, no flushing of the
parent's buffers, none of its threads, which a fork does not copy). The parent reads the
result when it wants it, with a time limit.

Whatever goes wrong in the child (an exception, a signal, a lock some other thread of the
parent held at the fork and the child then waits for forever) makes `result()` return None,
the child killed and reaped: the caller then does the work itself and meets the real error,
if there is one, in its own process.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import pickle
import resource
import selectors
import signal
import struct
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

READ_CHUNK = 1 << 20


def spare_core() -> bool:
    """True when this process may run on more than one core (and can fork)."""
    return hasattr(os, "fork") and len(os.sched_getaffinity(0)) > 1


class Forked(Generic[T]):
    """`work()` computed in a forked child: `result()` once, then (given `then`) `wait()` for
    the rest; `cancel()` at any time."""

    def __init__(self, pid: int, read_fd: int) -> None:
        self.pid = pid
        self._fd: int | None = read_fd
        self.cpu = 0.0
        """The child's CPU seconds (user + system), known once it is reaped."""
        self._code: int | None = None

    @classmethod
    def start(
        cls, work: Callable[[], T], then: Callable[[], object] | None = None
    ) -> Forked[T] | None:
        """Fork a child computing `work()` and, once its result is written, `then()` (work
        whose result nobody waits for: its exit code says whether it went well). None when
        the fork fails (no memory, no fork)."""
        read_fd, write_fd = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(read_fd)
            os.close(write_fd)
            return None
        if pid == 0:  # the child: compute, write, leave (never returns)
            code = 1
            try:
                os.close(read_fd)
                _write_all(write_fd, pickle.dumps(work(), pickle.HIGHEST_PROTOCOL))
                if then is not None:
                    then()
                code = 0
            finally:
                os._exit(code)
        os.close(write_fd)
        return cls(pid, read_fd)

    def result(self, timeout: float) -> T | None:
        """The child's result, once it has written all of it; None (the child killed and
        reaped) when it failed, died or did not write it within `timeout` seconds."""
        chunks = self._read(time.monotonic() + timeout)
        if chunks is not None:
            try:
                return pickle.loads(b"".join(chunks))  # type: ignore[no-any-return]
            except Exception:  # nothing, or part: the child wrote that and died
                pass
        self.cancel()
        return None

    def poll(self) -> int | None:
        """The child's exit code (negative: the signal that ended it) once it has ended and
        is reaped; None while it runs."""
        return self._reap(os.WNOHANG)

    def wait(self, timeout: float) -> int | None:
        """`poll()` until the child ends, for at most `timeout` seconds (None: it still runs)."""
        end = time.monotonic() + timeout
        while (code := self.poll()) is None and time.monotonic() < end:
            time.sleep(0.01)
        return code

    def cancel(self) -> None:
        """Kill the child (if it still runs) and reap it."""
        if self.pid == 0:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self._reap(0)

    def _read(self, end: float) -> list[bytes] | None:
        """Everything the child writes until it closes the pipe; None at `end`."""
        if self._fd is None:
            return None
        chunks: list[bytes] = []
        with selectors.DefaultSelector() as selector:
            selector.register(self._fd, selectors.EVENT_READ)
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    return None
                if not selector.select(left):
                    continue
                chunk = os.read(self._fd, READ_CHUNK)
                if not chunk:
                    return chunks
                chunks.append(chunk)

    def _reap(self, options: int) -> int | None:
        """Wait for the child (`options`: `os.WNOHANG` not to); its exit code."""
        if self.pid == 0:
            return self._code
        pid, status, usage = os.wait4(self.pid, options)
        if pid == 0:
            return None  # still running
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.pid = 0
        self.cpu = _cpu(usage)
        self._code = os.waitstatus_to_exitcode(status)
        return self._code


def _cpu(usage: resource.struct_rusage) -> float:
    return float(usage.ru_utime + usage.ru_stime)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.close(fd)


class Ends:
    """A list of `count` items worked through from both ends at once, by this process from the
    front and a forked worker from the back, each taking `take` items at a time until they
    meet: when the worker gets no core (a busy machine), this process just does more.

    The two positions live in memory shared across the fork, each written by one side only.
    They only divide the work: which items a side did is what it returns (the worker: in its
    result), so a stale read near the meeting point costs at most one batch done twice."""

    _LAYOUT = struct.Struct("qq")  # front (this process), back (the worker)

    def __init__(self, count: int) -> None:
        self.count = count
        self._shared = mmap.mmap(-1, self._LAYOUT.size)  # anonymous and shared: kept by fork
        self._LAYOUT.pack_into(self._shared, 0, 0, count)

    def _read(self) -> tuple[int, int]:
        front, back = self._LAYOUT.unpack_from(self._shared, 0)
        return int(front), int(back)

    def front(self, take: int) -> range | None:
        """The next items from the front (this process), or None where the worker has been."""
        front, back = self._read()
        if front >= back:
            return None
        end = min(front + take, back)
        struct.pack_into("q", self._shared, 0, end)
        return range(front, end)

    def back(self, take: int) -> range | None:
        """The next items from the back (the worker), or None where this process has been."""
        front, back = self._read()
        if back <= front:
            return None
        start = max(back - take, front)
        struct.pack_into("q", self._shared, 8, start)
        return range(start, back)

    def worker_started(self) -> bool:
        """The worker has taken items."""
        return self._read()[1] < self.count
