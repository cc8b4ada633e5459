"""One pure computation in a forked child (`linefleet_core.forked`), its result sent back
pickled; and a list worked through from both ends, by this process and the child.

`Forked.result()` gives the child's result once it has written all of it, or None (the child
killed and reaped) when it failed, died or ran out of time: the caller then does the work
itself and meets the real error, if there is one, in its own process.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import pickle
import selectors
import struct
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from linefleet_core.forked import Child, spare_core, write_all

__all__ = ["Ends", "Forked", "spare_core"]

T = TypeVar("T")

READ_CHUNK = 1 << 20
THEN_NICE = 10
"""How much lower the child's priority is once its result is written and it does `then`: no
one waits for that work (e.g. writing caches while the publisher sends), so on a busy machine
it takes what the processes someone waits for (the publisher, the broker, the devices) leave."""


class Forked(Generic[T]):
    """`work()` computed in a forked child: `result()` once, then (given `then`) `wait()` for
    the rest; `cancel()` at any time."""

    def __init__(self, child: Child) -> None:
        self._child = child
        self._fd: int | None = child.fd

    @property
    def pid(self) -> int:
        """The child's process id; 0 once it is reaped."""
        return self._child.pid

    @classmethod
    def start(
        cls, work: Callable[[], T], then: Callable[[], object] | None = None
    ) -> Forked[T] | None:
        """Fork a child computing `work()` and, once its result is written, `then()` (work
        whose result nobody waits for, run at `THEN_NICE` lower priority: its exit code says
        whether it went well). None when the fork fails (no memory, no fork)."""

        def body(fd: int) -> None:
            write_all(fd, pickle.dumps(work(), pickle.HIGHEST_PROTOCOL))
            os.close(fd)  # (the result is whole: the reader sees its end)
            if then is not None:
                with contextlib.suppress(OSError):
                    os.nice(THEN_NICE)
                then()

        child = Child.start(body)
        return None if child is None else cls(child)

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
        return self._closed(self._child.poll())

    def wait(self, timeout: float) -> int | None:
        """`poll()` until the child ends, for at most `timeout` seconds (None: it still runs)."""
        return self._closed(self._child.wait(timeout))

    def cancel(self) -> None:
        """Kill the child (if it still runs) and reap it."""
        self._child.cancel()
        self._closed(0)

    def _closed(self, code: int | None) -> int | None:
        if code is not None and self._fd is not None:
            os.close(self._fd)
            self._fd = None
        return code

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
