"""The edge agent: accepts desired states, converges (level-triggered), serves, reports.

One thread runs `tick()` in a loop: take newly received desired documents (verify, persist,
then act: `edge_puller/intake.py`), execute what arrived since the last tick (rollbacks by
hand, the engine's own fallbacks: `edge_puller/arrivals.py`), observe
(`edge_puller/snapshot.py`), plan (`edge_puller/planner.py`), execute
(`edge_puller/executor.py`). Temporary errors back off (capped, jittered, reset by a new
desired state); a model that fails for good becomes a `RecordFailure` step against this
generation, so the next plan routes around it and nothing retries it until the desired state
changes. Only intake and the executors change the local state; the agent holds the parts and
runs the loop. Frames are served from another thread through `serve()`, which only reads the
engine's current assignment.

Everything that leaves the device goes through the outbox: events at once, reports whenever
what they say changes and at least every `heartbeat_seconds`.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from edge_puller.arrivals import arrived, failed
from edge_puller.artifacts import ArtifactStore, DownloadPaused
from edge_puller.engine import Decision, Engine
from edge_puller.events import event_builder
from edge_puller.executor import execute
from edge_puller.framesize import Fit, camera_spec, fit, within_tiles
from edge_puller.intake import take_desired
from edge_puller.localstatus import keep_report
from edge_puller.metrics import LineMetrics
from edge_puller.outbox import Outbox
from edge_puller.planner import plan
from edge_puller.recent import DEFAULT_CAPACITY, RecentDecisions
from edge_puller.report import build_report
from edge_puller.runtime import Frame, ModelCache
from edge_puller.snapshot import snapshot
from edge_puller.spool import Spool
from edge_puller.state import LocalState, StateStore
from edge_puller.steps import Report
from edge_puller.target import camera_ids
from linefleet_core.backoff import Backoff
from linefleet_core.errors import PermanentError, TemporaryError
from linefleet_core.oci import Credentials
from linefleet_core.signing import TrustedKeys
from linefleet_core.wire import Channel, topic

log = logging.getLogger("linefleet.edge")
IDLE_TICK = 1.0


class Agent:
    def __init__(
        self,
        site: str,
        device: str,
        state_dir: Path,
        trusted_keys: TrustedKeys,
        clock: Callable[[], float] = time.monotonic,
        file_roots: Sequence[Path] = (),
        recent_frames: int = DEFAULT_CAPACITY,
        credentials: Mapping[str, Credentials] | None = None,
    ) -> None:
        self.site = site
        self.device = device
        self.state_dir = state_dir
        self.trusted_keys = trusted_keys
        self.clock = clock
        self._state_store = StateStore(state_dir)
        self.state: LocalState = self._state_store.load()
        self.store = ArtifactStore(
            state_dir / "models",
            file_roots=file_roots,
            credentials=credentials,
            progress=self._downloading,
        )
        self._downloads = True
        self._stop: threading.Event | None = None
        self._alive: Callable[[], None] | None = None
        """`run`'s stop and the watchdog's `alive`, for a download in progress."""
        self.cache = ModelCache()
        self.engine = Engine()
        self.outbox = Outbox(state_dir / "outbox.db")
        self.recent = RecentDecisions(state_dir, site, device, recent_frames)
        self.metrics: dict[str, LineMetrics] = {}
        self.spools: dict[str, Spool] = {}
        self.inbox: queue.Queue[bytes] = queue.Queue()
        self.wake = threading.Event()
        self.waiting = ""
        self.error = ""
        self.frames_problem = ""  # why no frames come in (a camera gone), "" while they do
        self.camera_problems: Callable[[], list[str]] | None = None
        """With `edge run --sources`: each camera's trouble, read on every tick."""
        self.camera_status: Callable[[], dict[str, dict[str, Any]]] | None = None
        """With `edge run --sources`: per-camera counters for the report's `cameras` section."""
        self._frames_reported: tuple[str, ...] = ()
        self._frame_sizes: dict[tuple[str, str], Fit] = {}
        """(line, camera) -> how its last frame fit the declared size (`problem` "" if it did)."""
        self.backoff = Backoff()
        self._last_report = float("-inf")
        self.lock = threading.Lock()

    # --- inputs from other threads ------------------------------------------------------------

    def offer_desired(self, payload: bytes) -> None:
        """Called by the MQTT thread: queue a desired-state payload for the loop."""
        self.inbox.put(payload)
        self.wake.set()

    def serve(self, camera: str, frame_id: str, frame: Frame, line: str | None = None) -> Decision:
        """Decide one frame with the line's current models; count it, spool it if anomalous."""
        lines = self.engine.lines()
        key = line or (min(lines) if lines else "")
        target = self.state.target
        wanted = target.lines.get(key) if target else None
        spec = camera_spec(wanted.cameras, camera) if wanted else None
        height, width = frame.shape[:2]
        placed = within_tiles(fit(spec, key, width, height), wanted, camera, width, height)
        with self.lock:
            self._frame_sizes[(key, camera)] = placed
        if placed.refused:
            self.unreadable(key)
            return Decision(key, camera, frame_id, "none", None, 0.0, None, error=placed.problem)
        roi = placed.roi
        decision = self.engine.infer(key, camera, frame_id, frame, roi)
        with self.lock:
            metrics = self.metrics.setdefault(key, LineMetrics(key))
            spool = self._spool(key)
        metrics.observe(decision, frame)
        now = dt.datetime.now(dt.UTC)
        if spool is not None:
            novelty = wanted.novelty if wanted else None
            model = self.cache.get(novelty.artifact.sha256) if novelty else None
            spool.consider(decision, frame, self.site, self.device, now, model, roi)
        self.recent.record(decision, frame, now)  # for an inspector's override
        return decision

    def frames_trouble(self, message: str) -> None:
        """Called by the frame loop: why frames stopped coming in (`""` once they flow again)."""
        self.frames_problem = message
        self.wake.set()

    def frame_size_problems(self) -> list[str]:
        """Cameras whose last frame had another aspect than the fleet declares, so it was
        refused (`framesize`): the report's `error`."""
        return self._frame_size_texts(refused=True)

    def frame_size_warnings(self) -> list[str]:
        """Cameras whose last frame was at another scale, so its ROI was scaled and the frame
        decided (`framesize`): the report's `warning`."""
        return self._frame_size_texts(refused=False)

    def _frame_size_texts(self, *, refused: bool) -> list[str]:
        """Of the lines and cameras the desired state still names."""
        target = self.state.target
        with self.lock:
            return [
                placed.problem
                for (line, camera), placed in sorted(self._frame_sizes.items())
                if placed.problem and placed.refused is refused and target is not None
                and line in target.lines and camera in camera_ids(target.lines[line])
            ]  # fmt: skip

    def unreadable(self, line: str | None = None) -> None:
        """Count a frame that could not be decoded (it is reported, never decided)."""
        lines = self.engine.lines()
        key = line or (min(lines) if lines else "")
        with self.lock:
            metrics = self.metrics.setdefault(key, LineMetrics(key))
        metrics.unreadable()

    # --- the loop -----------------------------------------------------------------------------

    def tick(self, *, downloads: bool = True) -> float:
        """One level-triggered pass; returns the seconds to wait before the next one.
        `downloads=False` (the pass before the loop, cameras and link start) leaves a needed
        download to the loop: what the device runs serves meanwhile."""
        self._downloads = downloads
        take_desired(self)
        for arrival in arrived(self.state_dir, self.engine.drain_events()):
            execute(self, arrival)
        if self.camera_problems is not None:
            self.frames_problem = "; ".join(self.camera_problems())
        self.waiting = ""
        for step in plan(snapshot(self)):
            try:
                execute(self, step)
            except DownloadPaused as exc:
                log.info("download left for now (%s); its part is kept", exc)
                return 0.0
            except TemporaryError as exc:
                self._set_error(str(exc))
                return self.backoff.next(exc.delay)
            except PermanentError as exc:
                failure = failed(step, exc)
                if failure is None:
                    self._set_error(str(exc))
                    return self.backoff.next(30.0)
                execute(self, failure)
                return 0.0
        self.backoff.reset()
        if self.error:  # the problem went away: say so now, not at the next heartbeat
            self.error = ""
            self.report()
        target = self.state.target
        heartbeat = target.document.spec.heartbeat_seconds if target else 60
        if self._frames_said() != self._frames_reported or (
            self.clock() - self._last_report >= heartbeat
        ):
            self.report()
        return IDLE_TICK

    def run(self, stop: threading.Event, alive: Callable[[], None] | None = None) -> None:
        """Tick until `stop`; a bug in one tick is logged and retried, never fatal to serving.
        `alive` (the systemd watchdog) is called at least every second while the loop runs,
        and after every piece a download receives."""
        self._stop, self._alive = stop, alive
        while not stop.is_set():
            try:
                delay = self.tick()
            except Exception:
                log.exception("convergence tick failed; retrying")
                delay = self.backoff.next(5.0)
            deadline = self.clock() + delay
            while not stop.is_set():
                if alive is not None:
                    alive()
                left = deadline - self.clock()
                if left <= 0 or self.wake.wait(min(left, 1.0)):
                    break
            self.wake.clear()

    @property
    def removed(self) -> bool:
        """The desired state was cleared: no longer in the fleet (kept in `state.json`)."""
        return self.state.removed_at is not None

    def spool_list(self) -> list[Spool]:
        with self.lock:
            return list(self.spools.values())

    def report(self) -> None:
        """Report now (the `Report` step: queue the document, record what it said)."""
        execute(self, Report())

    # --- the executors' context (`edge_puller.executor.Context`) ------------------------------

    def save(self, state: LocalState) -> None:
        self._state_store.save(state)
        self.state = state

    def emit(
        self,
        type: str,
        reason: str,
        message: str,
        line: str | None = None,
        details: dict[str, Any] | None = None,
        generation: int | None = None,
    ) -> None:
        build = event_builder(
            site=self.site,
            device=self.device,
            type=type,
            reason=reason,
            message=message,
            line=line,
            generation=generation if generation is not None else self.state.generation,
            details=details,
            install=self.outbox.install,
        )
        seq = self.outbox.put_event(topic(self.site, self.device, Channel.EVENTS), build)
        log.info("event %d %s (%s)%s: %s", seq, type, reason, f" {line}" if line else "", message)

    def send_report(self) -> None:
        self._frames_reported = self._frames_said()
        document = build_report(self)  # checked as a `ReportedState` once, fitted, encoded
        self.outbox.put_report(topic(self.site, self.device, Channel.REPORTED), document)
        keep_report(self.state_dir, document)  # `edge status` shows its error and warning
        self._last_report = self.clock()

    # --- helpers ----------------------------------------------------------------------------

    def _downloading(self) -> None:
        """Before a download and after each piece it receives (within a tick): say the
        loop is alive, take what arrived as the tick does, report at the heartbeat, and leave
        the download for a stop or a new desired state or removal (the next tick plans again;
        a still-needed model resumes its part). A duplicate (the retained copy a re-subscribe
        brings) leaves it running: a server that ignores `Range` would start it over."""
        if self._alive is not None:
            self._alive()
        if not self._downloads:
            raise DownloadPaused("not before the agent has started")
        if self._stop is not None and self._stop.is_set():
            raise DownloadPaused("stopping")
        if not self.inbox.empty():
            before = self._holds()
            take_desired(self)  # verified and persisted before anything acts on it
            if self._holds() != before:
                raise DownloadPaused("a desired state arrived")
        target = self.state.target
        heartbeat = target.document.spec.heartbeat_seconds if target else 60
        if self.clock() - self._last_report >= heartbeat:
            self.report()

    def _holds(self) -> tuple[tuple[int, str], float | None]:
        """What the device holds, as far as a download in progress is concerned."""
        target = self.state.target
        doc = target.document if target else None
        return (doc.generation, doc.content_hash) if doc else (0, ""), self.state.removed_at

    def _spool(self, key: str) -> Spool | None:
        target = self.state.target
        line = target.lines.get(key) if target else None
        if line is None:
            return self.spools.get(key)
        spool = self.spools.get(key)
        if spool is None:
            spool = Spool(self.state_dir / "spool" / key.replace("/", "__"), line.telemetry)
            self.spools[key] = spool
        spool.policy = line.telemetry
        return spool

    def _frames_said(self) -> tuple[str, ...]:
        """What the report says about frames (a report goes out when it changes)."""
        return (self.frames_problem, *self.frame_size_problems(), *self.frame_size_warnings())

    def _set_error(self, message: str) -> None:
        if message != self.error:
            self.error = message
            self.report()
