"""Every process the demo starts, in its own process group, and stopping all of them.

Children run in a new session (`start_new_session=True`), so a terminal's Ctrl-C reaches only
the demo; the demo then stops each child's whole group: SIGTERM, a grace period, SIGKILL.
`Children.stop_all()` runs from the signal handler's unwinding (`finally`) and from `atexit`,
so nothing the demo started outlives it, whatever way it ends.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from linefleet_core.loopback import accepts

GRACE_SECONDS = 5.0


class Interrupted(Exception):
    """SIGINT or SIGTERM reached the demo."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass(frozen=True)
class Finished:
    """A command that ran to its end: its exit code and everything it printed."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return "\n".join(part for part in (self.stdout, self.stderr) if part.strip())


class Children:
    """The registry of started processes; `stop_all` ends every group still alive."""

    def __init__(self) -> None:
        self._live: dict[int, tuple[str, subprocess.Popen[bytes]]] = {}
        self._installed = False

    def install(self) -> None:
        """Turn SIGINT/SIGTERM into `Interrupted` and stop every child at interpreter exit."""
        if self._installed:
            return
        self._installed = True
        atexit.register(self.stop_all)

        def handler(signum: int, _frame: FrameType | None) -> None:
            raise Interrupted(signum)

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    def start(
        self, name: str, argv: Sequence[str], log: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a long-running child; its stdout and stderr go to `log`."""
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )
        self._live[process.pid] = (name, process)
        return process

    def run(
        self, argv: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 300.0
    ) -> Finished:
        """Run a command to its end (stopped with the others on Ctrl-C); capture its output."""
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env=env,
        )
        self._live[process.pid] = (argv[0], process)
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(process)
            out, err = process.communicate()
            err += f"\n(stopped after {timeout:g} s)".encode()
        except BaseException:  # Interrupted (Ctrl-C) while it runs: it stops with the demo
            self.stop(process)
            raise
        finally:
            self._live.pop(process.pid, None)
        return Finished(
            tuple(argv),
            process.returncode,
            out.decode("utf-8", errors="replace"),
            err.decode("utf-8", errors="replace"),
        )

    def alive(self) -> list[str]:
        return [name for name, p in self._live.values() if p.poll() is None]

    def stop(self, process: subprocess.Popen[bytes], grace: float = GRACE_SECONDS) -> None:
        """SIGTERM the child's process group, then SIGKILL it if it outlives `grace`."""
        self._signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self._signal_group(process, signal.SIGKILL)
            process.wait(timeout=grace)
        # a grandchild may still hold the group after its leader exited
        self._signal_group(process, signal.SIGKILL)
        self._live.pop(process.pid, None)

    def stop_all(self) -> None:
        """Stop every live child, newest first (edge agents before their broker). Once the
        demo is stopping, a second Ctrl-C cannot cut the clean-up short."""
        if self._installed:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for pid in sorted(self._live, reverse=True):
            entry = self._live.get(pid)
            if entry is not None:
                try:
                    self.stop(entry[1])
                except Exception as exc:  # never let one stuck child keep the others alive
                    print(f"demo: could not stop {entry[0]} (pid {pid}): {exc}", file=sys.stderr)

    @staticmethod
    def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signum)


def wait_listening(
    process: subprocess.Popen[bytes], port: int, timeout: float, interval: float = 0.1
) -> str | None:
    """Wait until the server `process` started accepts connections on 127.0.0.1:`port`: None
    then, else why not ("exited at start", "did not listen on port N")."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return "exited at start"
        if accepts("127.0.0.1", port):
            return None
        time.sleep(interval)
    return f"did not listen on port {port}"
