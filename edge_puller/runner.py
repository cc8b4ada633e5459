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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from edge_puller.agent import Agent
from edge_puller.airgap import import_bundle
from edge_puller.cameras import CameraFeed, CameraHub, read_camera
from edge_puller.frames import Frames, open_camera, open_source
from edge_puller.link import Link
from edge_puller.recent import DEFAULT_CAPACITY
from edge_puller.report import AGENT
from edge_puller.sources import Source, Sources, check_cameras, lines_of
from edge_puller.systemd import Watchdog, notify, watchdog_seconds
from edge_puller.target import camera_ids
from linefleet_core.errors import LinefleetError, UsageError
from linefleet_core.mqtturl import BrokerAddress
from linefleet_core.oci import Credentials
from linefleet_core.signing import SigningKey, TrustedKeys

log = logging.getLogger("linefleet.edge")


@dataclass(frozen=True)
class RunOptions:
    site: str
    device: str
    broker: BrokerAddress | None
    """None: no broker at all (an air-gapped site fed by `bundle`)."""
    state_dir: Path
    frames: str | None
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
    sources: Sources | None = None
    """Every camera's source (`edge run --sources`), instead of one `frames` source."""
    workers: int = 2
    """Inspection threads deciding frames (with `sources`); onnxruntime runs them in parallel."""
    watchdog: Watchdog | None = None
    """systemd's watchdog (`edge_puller/systemd.py`): every loop says it is alive to it."""
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
    source: Frames | None = None
    try:
        if options.sources is None:
            source = open_source(options.frames or "", stop, agent.frames_trouble)  # bad: exit
        else:
            _check_sources(agent, options.sources)
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
    watchdog = options.watchdog
    if watchdog is None and (period := watchdog_seconds()) is not None:
        watchdog = Watchdog(period)
    options = replace(options, watchdog=watchdog)
    alive = (lambda: watchdog.alive("converge")) if watchdog is not None else None
    loop = threading.Thread(target=agent.run, args=(stop, alive), name="converge", daemon=True)
    # Serve from the persisted state before the first frame, broker or not; a model still to
    # download is the loop's (a restart mid-download would otherwise wait for it to inspect).
    agent.tick(downloads=False)
    loop.start()
    if link is not None:
        link.start()
    if watchdog is not None:
        watchdog.alive("converge")
        threading.Thread(target=watchdog.run, args=(stop,), name="watchdog", daemon=True).start()
    notify("READY=1")
    sink = _open_sink(options.results)
    try:
        if source is not None:
            _frames(agent, options, source, sink, stop)
        else:
            assert options.sources is not None
            every_camera(agent, options, options.sources, sink, stop)
        stop.wait()
    finally:
        notify("STOPPING=1")
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


def wait_for_a_model(agent: Agent, line: str | None, stop: threading.Event) -> None:
    """Until `line` (any line without one) has a model loaded: a folder's or a video's frames
    are not read before, so a backlog is decided by a model instead of being spent as "no
    model" while the first download runs (as `--sources` workers wait, `_inspect`)."""
    while not stop.is_set():
        served = agent.engine.lines()
        if (line in served) if line else served:
            return
        target = agent.state.target
        if line and target is not None and line not in target.lines:
            log.warning(
                "--line %s: this device serves no such line (it serves %s); its frames get "
                "no model", line, ", ".join(sorted(target.lines)) or "none",
            )  # fmt: skip
            return
        stop.wait(0.2)


def _frames(
    agent: Agent, options: RunOptions, source: Frames, sink: IO[str], stop: threading.Event
) -> None:
    wait_for_a_model(agent, options.line, stop)
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


def _served(agent: Agent) -> dict[str, tuple[str, ...]]:
    """Each line of the current desired state and its cameras."""
    target = agent.state.target
    return {key: camera_ids(line) for key, line in target.lines.items()} if target else {}


def _check_sources(agent: Agent, sources: Sources) -> None:
    """Before serving: every camera of the sources file must be one of the device's cameras
    (when the device holds a desired state; otherwise the check runs once one arrives)."""
    if agent.state.target is None:
        return
    unknown = check_cameras(sources.cameras, _served(agent)).unknown
    if unknown:
        known = sorted({c for cams in _served(agent).values() for c in cams})
        raise UsageError(
            f"{sources.path}: cameras.{unknown[0]}: not a camera of any line this device "
            f"serves (its cameras: {', '.join(known)})"
            + (f"; also unknown: {', '.join(unknown[1:])}" if len(unknown) > 1 else "")
        )


def every_camera(
    agent: Agent, options: RunOptions, sources: Sources, sink: IO[str], stop: threading.Event
) -> None:
    """Read every camera concurrently and decide its frames on all the lines it serves."""
    feeds = {cam: CameraFeed(src, sources.queue_frames) for cam, src in sources.cameras.items()}
    hub = CameraHub(feeds)
    hub.on_change = agent.wake.set

    def problems() -> list[str]:
        return hub.problems() + check_cameras(sources.cameras, _served(agent)).problems()

    agent.camera_problems = problems
    agent.camera_status = hub.status
    write = threading.Lock()

    def opener(source: Source, halt: threading.Event, trouble: Callable[[str], None]) -> Frames:
        return open_camera(source.kind, source.location, source.camera, halt, trouble)

    threads = [
        threading.Thread(
            target=read_camera,
            args=(hub, feed, opener, stop, options.max_frames),
            name=f"camera-{cam}",
            daemon=True,
        )
        for cam, feed in feeds.items()
    ]
    threads += [
        threading.Thread(
            target=_inspect, args=(agent, hub, sink, write, stop, options.watchdog),
            name=f"inspect-{n}", daemon=True,
        )
        for n in range(max(1, options.workers))
    ]  # fmt: skip
    for thread in threads:
        thread.start()


def _inspect(
    agent: Agent,
    hub: CameraHub,
    sink: IO[str],
    write: threading.Lock,
    stop: threading.Event,
    watchdog: Watchdog | None,
) -> None:
    """An inspection worker: the next frame of any camera, decided on each of its lines."""
    name = threading.current_thread().name

    def alive() -> None:
        if watchdog is not None:
            watchdog.alive(name)

    while not stop.is_set() and not agent.engine.lines():
        alive()
        stop.wait(0.2)  # nothing serves yet: recorded sources wait, live ones drop the oldest
    while not stop.is_set():
        alive()  # a worker stuck in inference stops saying so: systemd restarts the agent
        taken = hub.take(stop, timeout=0.5)
        if taken is None:
            if hub.exhausted:
                return
            continue
        feed, (frame_id, frame) = taken
        camera = feed.source.camera
        lines = lines_of(camera, _served(agent))
        hub.done(feed, bool(lines))
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        records: list[dict[str, Any]] = []
        for line in lines:
            if frame is None:
                agent.unreadable(line)
                records.append(
                    {"line": line, "camera": camera, "frame_id": frame_id, "label": None,
                     "error": "unreadable frame"}
                )  # fmt: skip
            else:
                records.append(agent.serve(camera, frame_id, frame, line).to_json())
        with write:
            for record in records:
                sink.write(json.dumps({"at": now, **record}, sort_keys=True) + "\n")
            sink.flush()


def _camera(agent: Agent, line: str | None) -> str:
    target = agent.state.target
    if target is None:
        return "camera"
    key = line or min(target.lines, default="")
    wanted = target.lines.get(key)
    return wanted.cameras[0].id if wanted else "camera"


def _open_sink(path: Path | None) -> IO[str]:
    if path is None or str(path) == "-":
        return sys.stdout
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("a", encoding="utf-8")
