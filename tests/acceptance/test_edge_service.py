"""The agent as a systemd service: the unit `edge install-service` writes, and sd_notify over a
real `$NOTIFY_SOCKET` datagram socket (READY=1, WATCHDOG=1 from the loops, STOPPING=1)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge_puller.systemd import Watchdog, notify, watchdog_seconds
from linefleet.cli import main
from linefleet_core.signing import SigningKey
from tests.support.mosquitto import free_port

pytestmark = pytest.mark.acceptance


def test_install_service_writes_a_unit_with_restart_watchdog_journald_and_var_lib(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "linefleet-edge.service"
    argv = ["edge", "install-service", "--device", "dresden/dresden-paint-edge-1"]
    argv += ["--broker", "mqtts://broker.plant:8883", "--sources", "/etc/linefleet/sources.yaml"]
    argv += ["--trust-key", "/etc/linefleet/keys", "--executable", "/opt/lf/bin/linefleet"]
    assert main([*argv, "--out", str(out)]) == 0
    unit = out.read_text()
    for line in (
        "Type=notify",
        "Restart=on-failure",
        "WatchdogSec=30",
        "StandardOutput=journal",
        "StateDirectory=linefleet/edge",
        "ExecStart=/opt/lf/bin/linefleet edge run --device dresden/dresden-paint-edge-1 "
        "--broker mqtts://broker.plant:8883 --state-dir /var/lib/linefleet/edge --sources "
        "/etc/linefleet/sources.yaml --trust-key /etc/linefleet/keys --results "
        "/var/lib/linefleet/edge/results.jsonl",
    ):
        assert line in unit.splitlines(), line
    verify = shutil.which("systemd-analyze")
    if verify:  # systemd's own parser: no unknown keys or bad values
        done = subprocess.run(
            [verify, "verify", "--man=no", str(out)], capture_output=True, text=True, timeout=60
        )
        bad = [x for x in done.stderr.splitlines() if str(out) in x and "Executable" not in x]
        assert bad == [], done.stderr
    assert main([*argv, "--state-dir", "relative"]) == 2
    assert "absolute paths" in capsys.readouterr().err


def test_the_watchdog_is_fed_only_while_every_loop_is_alive() -> None:
    sent: list[str] = []
    now = [0.0]
    dog = Watchdog(10.0, send=sent.append, clock=lambda: now[0])
    dog.alive("converge")
    dog.alive("inspect-0")
    assert dog.pet() and sent == ["WATCHDOG=1"]
    now[0] = 8.0
    dog.alive("converge")  # inspect-0 hangs in inference
    now[0] = 12.0
    assert dog.stalled() == ["inspect-0"] and not dog.pet() and sent == ["WATCHDOG=1"]
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert notify("READY=1", {}) is False  # not run by systemd: nothing to do


def test_a_running_agent_says_ready_pets_the_watchdog_and_says_stopping(tmp_path: Path) -> None:
    key = SigningKey.generate()
    _, public = key.write(tmp_path / "keys")
    (tmp_path / "frames").mkdir()
    sources = tmp_path / "sources.yaml"
    sources.write_text(f"cameras:\n  cam-1: {tmp_path / 'frames'}\n")
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(20)
        env = {**os.environ, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "linefleet", "edge", "run", "--device", "plant/dev-1",
             "--broker", f"mqtt://127.0.0.1:{free_port()}", "--state-dir", str(tmp_path / "s"),
             "--sources", str(sources), "--trust-key", str(public)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        got: list[str] = []
        try:
            deadline = time.monotonic() + 30
            while got.count("WATCHDOG=1") < 2 and time.monotonic() < deadline:
                got.append(sock.recv(256).decode())
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        sock.settimeout(1)
        try:
            while True:
                got.append(sock.recv(256).decode())
        except TimeoutError:
            pass
    assert proc.returncode == 0, err
    assert got[0] == "READY=1" and got.count("WATCHDOG=1") >= 2 and got[-1] == "STOPPING=1"
