"""The demo's process registry: whole process groups stop, on request and on Ctrl-C."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from linefleet.demo.procs import Children, Interrupted
from tests.support.waiting import wait_for


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


def _wait_pid_file(path: Path) -> int:
    def pid() -> str:
        return path.read_text().strip() if path.exists() else ""

    return int(wait_for(f"the pid in {path.name}", pid, 10))


def test_stop_all_ends_the_child_and_its_grandchildren(tmp_path: Path) -> None:
    children = Children()
    pid_file = tmp_path / "grandchild.pid"
    # the grandchild ignores SIGTERM: only the group SIGKILL after the grace period ends it
    script = f"(trap '' TERM; sleep 60) & echo $! > {pid_file}; wait"
    child = children.start("shell", ["sh", "-c", script], tmp_path / "log")
    grandchild = _wait_pid_file(pid_file)
    assert children.alive() == ["shell"]
    children.stop_all()
    assert child.poll() is not None
    wait_for("the grandchild to end", lambda: not _alive(grandchild), 5)
    assert children.alive() == []


def test_run_captures_output_and_exit_code(tmp_path: Path) -> None:
    done = Children().run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
    assert done.output == "out\n\nerr\n"


def test_a_signal_during_a_command_stops_that_command_too(tmp_path: Path) -> None:
    children = Children()
    pid_file = tmp_path / "cmd.pid"
    previous = signal.getsignal(signal.SIGALRM)

    def interrupt(signum: int, _frame: object) -> None:
        raise Interrupted(signal.SIGINT)

    signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        with pytest.raises(Interrupted):
            children.run(["sh", "-c", f"echo $$ > {pid_file}; sleep 60"])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert not _alive(_wait_pid_file(pid_file))
    assert children.alive() == []
