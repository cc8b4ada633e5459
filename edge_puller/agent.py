"""The edge agent: accepts desired states, converges (level-triggered), serves, reports.

One thread runs `tick()` in a loop: take newly received desired documents (verify, persist,
then act), fold the engine's own fallbacks into the local state, observe, plan, execute.
Temporary errors back off (capped, jittered, reset by a new desired state); a model that fails
for good is recorded against this generation, so the next plan routes around it and nothing
retries it until the desired state changes. Frames are served from another thread through
`serve()`, which only reads the engine's current assignment.

Everything that leaves the device goes through the outbox: events at once, reports whenever
what they say changes and at least every `heartbeat_seconds`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from edge_puller.artifacts import ArtifactStore
from edge_puller.backoff import Backoff
from edge_puller.desired import accept
from edge_puller.engine import Decision, Engine
from edge_puller.events import event_document
from edge_puller.executor import execute
from edge_puller.metrics import LineMetrics
from edge_puller.outbox import Outbox
from edge_puller.planner import (
    Download,
    LoadAndSmokeTest,
    Observed,
    Running,
    SpoolView,
    Step,
    Verify,
    fingerprint,
    plan,
)
from edge_puller.recent import DEFAULT_CAPACITY, RecentDecisions
from edge_puller.report import build_report, fit
from edge_puller.runtime import Frame, ModelCache
from edge_puller.spool import Spool, peek, spooled_lines
from edge_puller.state import Failure, LocalState, StateStore
from linefleet_core.errors import PermanentError, TemporaryError
from linefleet_core.highwater import floor
from linefleet_core.signing import Refusal, TrustedKeys, VerifyError
from linefleet_core.wire import (
    MAX_DESIRED_BYTES,
    Channel,
    ReportedState,
    topic,
)

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
    ) -> None:
        self.site = site
        self.device = device
        self.state_dir = state_dir
        self.trusted_keys = trusted_keys
        self.clock = clock
        self._state_store = StateStore(state_dir)
        self.state: LocalState = self._state_store.load()
        self.store = ArtifactStore(state_dir / "models", file_roots=file_roots)
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
        self._frames_reported = ""
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
        decision = self.engine.infer(key, camera, frame_id, frame)
        with self.lock:
            metrics = self.metrics.setdefault(key, LineMetrics(key))
            spool = self._spool(key)
        metrics.observe(decision, frame)
        now = dt.datetime.now(dt.UTC)
        if spool is not None:
            spool.consider(decision, frame, self.site, self.device, now)
        self.recent.record(decision, frame, now)  # for an inspector's override
        return decision

    def frames_trouble(self, message: str) -> None:
        """Called by the frame loop: why frames stopped coming in (`""` once they flow again)."""
        self.frames_problem = message
        self.wake.set()

    def unreadable(self, line: str | None = None) -> None:
        """Count a frame that could not be decoded (it is reported, never decided)."""
        lines = self.engine.lines()
        key = line or (min(lines) if lines else "")
        with self.lock:
            metrics = self.metrics.setdefault(key, LineMetrics(key))
        metrics.unreadable()

    # --- the loop -----------------------------------------------------------------------------

    def tick(self) -> float:
        """One level-triggered pass; returns the seconds to wait before the next one."""
        self._take_inbox()
        self._take_engine_events()
        self.waiting = ""
        for step in plan(self.observe()):
            try:
                execute(self, step)
            except TemporaryError as exc:
                self._set_error(str(exc))
                return self.backoff.next(exc.delay)
            except PermanentError as exc:
                sha = _model_of(step)
                if sha is None:
                    self._set_error(str(exc))
                    return self.backoff.next(30.0)
                self._fail(sha, getattr(exc, "reason", "failed"), str(exc), step)
                return 0.0
        self.backoff.reset()
        if self.error:  # the problem went away: say so now, not at the next heartbeat
            self.error = ""
            self.report()
        target = self.state.target
        heartbeat = target.heartbeat_seconds if target else 60
        if self.frames_problem != self._frames_reported or (
            self.clock() - self._last_report >= heartbeat
        ):
            self.report()
        return IDLE_TICK

    def run(self, stop: threading.Event) -> None:
        """Tick until `stop`; a bug in one tick is logged and retried, never fatal to serving."""
        while not stop.is_set():
            try:
                delay = self.tick()
            except Exception:
                log.exception("convergence tick failed; retrying")
                delay = self.backoff.next(5.0)
            self.wake.wait(delay)
            self.wake.clear()

    @property
    def removed(self) -> bool:
        """The desired state was cleared: no longer in the fleet (kept in `state.json`)."""
        return self.state.removed_at is not None

    def spool_list(self) -> list[Spool]:
        with self.lock:
            return list(self.spools.values())

    def observe(self) -> Observed:
        running = {}
        for key, models in self.engine.lines().items():
            candidate = models.candidate
            running[key] = Running(
                serving=models.serving.spec.sha256,
                standby=models.standby.spec.sha256 if models.standby else None,
                candidate=candidate.spec.sha256 if candidate else None,
                stage=models.stage,
                canary_fraction=models.canary_fraction,
            )
        parts = {}
        for entry in self.store.root.glob("*.part"):
            parts[entry.name.removesuffix(".part")] = entry.stat().st_size
        return Observed(
            target=self.state.target,
            active=self.state.active,
            stored=self.store.present(),
            partial=parts,
            loaded=self.cache.loaded(),
            running=running,
            failures=self.state.failures,
            applied_generation=self.state.applied_generation,
            reported=self.state.reported,
            spools=self._spool_views(),
            now=time.time(),
        )

    def _spool_views(self) -> dict[str, SpoolView]:
        """Spool folders on disk; frames are counted only for lines no longer served."""
        target = self.state.target
        served = set(target.lines) if target else set()
        with self.lock:
            loaded = dict(self.spools)
        views = {}
        for key, folder in spooled_lines(self.state_dir / "spool").items():
            spool = loaded.get(key)
            if spool is None:
                pending, retired_at = peek(folder) if key not in served else (0, None)
                views[key] = SpoolView(pending, retired_at)
            else:
                pending = spool.pending() if key not in served else 0
                views[key] = SpoolView(pending, spool.counters.retired_at, loaded=True)
        return views

    # --- the executor's context -----------------------------------------------------------------

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
        def build(seq: int) -> bytes:
            return event_document(
                site=self.site,
                device=self.device,
                seq=seq,
                type=type,
                reason=reason,
                message=message,
                line=line,
                generation=generation if generation is not None else self.state.generation,
                details=details,
            )

        seq = self.outbox.put_event(topic(self.site, self.device, Channel.EVENTS), build)
        log.info("event %d %s (%s)%s: %s", seq, type, reason, f" {line}" if line else "", message)

    def report(self) -> None:
        self._frames_reported = self.frames_problem
        document = fit(build_report(self))
        ReportedState.model_validate_json(document)  # never send what the protocol refuses
        self.outbox.put_report(topic(self.site, self.device, Channel.REPORTED), document)
        self.save(replace(self.state, reported=fingerprint(self.observe())))
        self._last_report = self.clock()

    # --- helpers ----------------------------------------------------------------------------

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

    def _take_inbox(self) -> None:
        while True:
            try:
                payload = self.inbox.get_nowait()
            except queue.Empty:
                return
            self._accept(payload)

    def _accept(self, payload: bytes) -> None:
        if not payload:
            if self.state.removed_at is None:  # persisted: a restart still knows
                self.save(replace(self.state, removed_at=time.time()))
            self.report()
            return
        held = floor(self.state.marks, self.trusted_keys)  # unpinned keys' marks do not bind
        try:
            raw, target = accept(payload, self.trusted_keys, self.device, held)
        except RecursionError:  # JSON nested deeper than the parser's stack
            exc = VerifyError(Refusal.MALFORMED, "JSON nested too deeply")
            self.emit("refused-document", exc.reason.value, str(exc))
            return
        except VerifyError as exc:
            self.emit(
                "refused-document",
                exc.reason.value,
                str(exc),
                generation=_generation_of(payload),
            )
            return
        if self.state.removed_at is not None:  # a verified document: back in the fleet
            self.save(replace(self.state, removed_at=None))
        held_target = self.state.target
        if (
            held_target is not None
            and target.generation == held_target.generation
            and target.content_hash == held_target.content_hash
        ):
            # A duplicate (perhaps re-signed with another key): only remember who signed it.
            self.save(replace(self.state.with_mark(raw, target), last_sync=time.time()))
            return
        self.save(self.state.with_desired(raw, target))  # persist before acting
        self.backoff.reset()

    def _take_engine_events(self) -> None:
        for event in self.engine.drain_events():
            failures = {
                **self.state.failures,
                event.sha256: Failure(event.reason, event.message, self.state.generation),
            }
            self.save(replace(self.state, failures=failures))
            self.emit(
                event.type,
                event.reason,
                event.message + "; the incumbent keeps serving",
                line=event.line,
                details={"model": event.model},
            )

    def _fail(self, sha: str, reason: str, message: str, step: Step) -> None:
        failures = {**self.state.failures, sha: Failure(reason, message, self.state.generation)}
        self.save(replace(self.state, failures=failures))
        kind = "fallback" if isinstance(step, LoadAndSmokeTest) else "download-failed"
        model = getattr(step, "model", None)
        self.emit(
            kind,
            reason,
            message + "; the incumbent keeps serving",
            details={"model": model.ref if model else None, "sha256": sha},
        )

    def _set_error(self, message: str) -> None:
        if message != self.error:
            self.error = message
            self.report()


def _model_of(step: Step) -> str | None:
    if isinstance(step, Download | Verify | LoadAndSmokeTest):
        return step.model.sha256
    return None


def _generation_of(payload: bytes) -> int | None:
    """The generation a refused document claims, if it can be read cheaply and safely."""
    if len(payload) > MAX_DESIRED_BYTES:
        return None
    try:
        value = json.loads(payload).get("generation")
    except (ValueError, AttributeError, RecursionError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
