"""`linefleet edge run`: the agent loop, the MQTT link and the frame loop, until SIGTERM.

Three activities share one `stop` event: the convergence loop (its own thread), the MQTT link
(two threads) and the frame loop (the calling thread), which decides every frame and writes
one JSON line per decision to the results sink. SIGTERM or SIGINT sets `stop`; shutdown then
queues a last report, says `online: false`, and closes the outbox, so nothing is half done.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from edge_puller.agent import Agent
from edge_puller.airgap import import_bundle
from edge_puller.frames import Frames, open_source
from edge_puller.link import Link
from edge_puller.recent import DEFAULT_CAPACITY
from edge_puller.report import AGENT
from linefleet_core.errors import LinefleetError, UsageError
from linefleet_core.mqtturl import BrokerAddress
from linefleet_core.oci import Credentials
from linefleet_core.signing import SigningKey, TrustedKeys


@dataclass(frozen=True)
class RunOptions:
    site: str
    device: str
    broker: BrokerAddress | None
    """None: no broker at all (an air-gapped site fed by `bundle`)."""
    state_dir: Path
    frames: str
    trusted_keys: TrustedKeys
    results: Path | None
    line: str | None = None
    max_frames: int | None = None
    artifact_roots: tuple[Path, ...] = ()
    """The only folders `file://` artifacts may come from (none: every `file://` URL refused)."""
    recent_frames: int = DEFAULT_CAPACITY
    """Decisions kept with their frames for inspector overrides (`edge_puller/recent.py`)."""
    bundle: Path | None = None
    """A signed site bundle to apply first (`linefleet bundle export`), with the MQTT checks."""
    credentials: Mapping[str, Credentials] = field(default_factory=dict)
    """Registry credentials by `HOST[:PORT]` (`--registry-credentials`), for `oci://` models."""
    device_key: SigningKey | None = None
    """Signs every report and event the device sends (`linefleet keys device`)."""


def lock_state_dir(folder: Path) -> int:
    """Hold an exclusive lock on the state directory for the life of the process."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / "agent.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UsageError(f"--state-dir {folder}: another edge agent is running on it") from None
    return fd


def run(options: RunOptions, stop: threading.Event | None = None) -> int:
    stop = stop or threading.Event()
    lock = lock_state_dir(options.state_dir)
    try:
        return _run(options, stop)
    finally:
        os.close(lock)  # closing the descriptor releases the lock


def _run(options: RunOptions, stop: threading.Event) -> int:
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    agent = Agent(
        options.site,
        options.device,
        options.state_dir,
        options.trusted_keys,
        file_roots=options.artifact_roots,
        recent_frames=options.recent_frames,
        credentials=options.credentials,
    )
    try:
        source = open_source(options.frames, stop, agent.frames_trouble)  # bad ones exit here
    except UsageError:
        agent.outbox.close()
        raise
    if options.bundle is not None:
        try:
            import_bundle(agent, options.bundle)
        except LinefleetError:
            agent.outbox.close()
            raise
    link = None
    if options.broker is not None:
        link = Link(
            options.broker,
            options.site,
            options.device,
            agent.offer_desired,
            agent.outbox,
            spools=agent.spool_list,
            agent=AGENT,
            device_key=options.device_key,
        )
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    loop = threading.Thread(target=agent.run, args=(stop,), name="converge", daemon=True)
    agent.tick()  # serve from the persisted state before the first frame, broker or not
    loop.start()
    if link is not None:
        link.start()
    sink = _open_sink(options.results)
    try:
        _frames(agent, options, source, sink)
        stop.wait()
    finally:
        stop.set()
        agent.wake.set()
        loop.join(10.0)
        agent.report()
        agent.recent.close()
        if link is not None:
            link.stop()
        agent.outbox.close()
        if sink is not sys.stdout:
            sink.close()
    return 0


def _frames(agent: Agent, options: RunOptions, source: Frames, sink: IO[str]) -> None:
    for served, (frame_id, frame) in enumerate(source, start=1):
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        record: dict[str, Any]
        if frame is None:
            agent.unreadable(options.line)
            record = {"frame_id": frame_id, "error": "unreadable frame", "label": None}
        else:
            camera = _camera(agent, options.line)
            record = agent.serve(camera, frame_id, frame, options.line).to_json()
        sink.write(json.dumps({"at": now, **record}, sort_keys=True) + "\n")
        sink.flush()
        if options.max_frames is not None and served >= options.max_frames:
            return


def _camera(agent: Agent, line: str | None) -> str:
    target = agent.state.target
    if target is None:
        return "camera"
    key = line or min(target.lines, default="")
    wanted = target.lines.get(key)
    return wanted.cameras[0] if wanted else "camera"


def _open_sink(path: Path | None) -> IO[str]:
    if path is None or str(path) == "-":
        return sys.stdout
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("a", encoding="utf-8")
