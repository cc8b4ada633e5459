"""Fault injectors for the soak: a cuttable network link and real edge processes to kill.

- `TcpProxy`: a loopback TCP forwarder between one device and the broker. `cut()` drops every
  connection and refuses new ones (the device is offline, yet keeps running and inspecting);
  `restore()` lets it reconnect. When the broker goes away, the proxy closes the device side.
  `reply_delay` holds the broker's first bytes on a new connection (its CONNACK) that long:
  a slow reconnect, during which a client may already be publishing. `stall()` makes the
  current connections a black hole (bytes vanish, no reset): a dead link the client only
  notices through its keepalive. `upload_rate` (bytes per second, None: unlimited) makes the
  client-to-broker direction a slow uplink from the moment it is set.
- `EdgeProcess`: `linefleet edge run` as a child process (through `edge_child`, which adds a
  fillable disk), with a frames folder the harness feeds. `kill()` is SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tests.support.mosquitto import free_port


class TcpProxy:
    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.upstream = upstream_port
        self.port = free_port()
        self.open = True
        self.reply_delay = 0.0  # seconds the broker's first reply (CONNACK) is held back
        self.upload_rate: float | None = None  # client -> broker bytes per second
        self._conns: list[socket.socket] = []
        self._stalled: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._server = socket.create_server((host, self.port))
        self._server.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True, name="proxy")
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                down, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self.open:
                down.close()
                continue
            try:
                up = socket.create_connection((self.host, self.upstream), timeout=2)
            except OSError:
                down.close()
                continue
            up.settimeout(None)
            down.settimeout(None)
            with self._lock:
                self._conns += [down, up]
            for a, b, delay, rated in ((down, up, 0.0, True), (up, down, self.reply_delay, False)):
                args = (a, b, delay, rated)
                threading.Thread(target=self._pump, args=args, daemon=True).start()

    def _pump(
        self, src: socket.socket, dst: socket.socket, delay: float = 0.0, rated: bool = False
    ) -> None:
        time.sleep(delay)
        try:
            while True:
                rate = self.upload_rate if rated else None
                data = src.recv(65536 if rate is None else 1024)
                if not data:
                    break
                if rate is not None:
                    time.sleep(len(data) / rate)
                if src not in self._stalled:
                    dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def cut(self) -> None:
        self.open = False
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def stall(self) -> None:
        with self._lock:
            self._stalled.update(self._conns)

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        self._stop.set()
        self.cut()
        self._server.close()


class EdgeProcess:
    def __init__(
        self,
        site: str,
        device: str,
        workdir: Path,
        broker_url: str,
        trust_key: Path,
        artifact_root: Path,
    ) -> None:
        self.site, self.device = site, device
        self.workdir = workdir
        self.frames = workdir / "frames"
        self.frames.mkdir(parents=True, exist_ok=True)
        self.results = workdir / "results.jsonl"
        self.state = workdir / "state"
        self.floor = workdir / "disk-floor"
        self.log = workdir / "edge.log"
        self.argv = [
            sys.executable,
            "-m",
            "tests.reliability.edge_child",
            str(self.floor),
            "--",
            "edge",
            "run",
            "--device",
            f"{site}/{device}",
            "--broker",
            broker_url,
            "--state-dir",
            str(self.state),
            "--frames",
            str(self.frames),
            "--trust-key",
            str(trust_key),
            "--results",
            str(self.results),
            "--artifact-root",
            str(artifact_root),
        ]
        self.proc: subprocess.Popen[bytes] | None = None
        self.frames_written = 0
        self.kills = 0

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=Path(__file__).resolve().parents[2],
                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
            )

    def kill(self) -> None:
        """SIGKILL: a power cut."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.kills += 1
        self.proc = None

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        return code

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def fill_disk(self) -> None:
        self.floor.write_text("full")

    def free_disk(self) -> None:
        self.floor.unlink(missing_ok=True)

    def show_frame(self) -> None:
        self.frames_written += 1
        shade = 60 if self.frames_written % 5 == 0 else 200  # mostly ok, some defects
        image = np.full((48, 64, 3), shade, dtype=np.uint8)
        path = self.frames / f"f{self.frames_written:06d}.png"
        tmp = path.with_suffix(".tmp")
        ok, data = cv2.imencode(".png", image)
        assert ok
        tmp.write_bytes(data.tobytes())
        tmp.replace(path)

    def decisions(self) -> list[dict[str, Any]]:
        if not self.results.exists():
            return []
        rows = []
        for line in self.results.read_text().splitlines():
            with contextlib.suppress(ValueError):  # a line cut by SIGKILL mid-write
                rows.append(json.loads(line))
        return rows

    def events_queued(self) -> int:
        """Events still in the device's outbox (not yet acknowledged by the broker)."""
        db = self.state / "outbox.db"
        if not db.exists():
            return 0
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            row = conn.execute("SELECT COUNT(*) FROM outbox WHERE kind='event'").fetchone()
        return int(row[0])

    def events_issued(self) -> int:
        """The event `seq` counter the device persisted (its outbox database)."""
        db = self.state / "outbox.db"
        if not db.exists():
            return 0
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            row = conn.execute("SELECT value FROM counters WHERE name='event_seq'").fetchone()
        return int(row[0]) if row else 0
