"""The serving engine: which model decides each frame, shadow and canary, instant rollback.

Per line the engine holds an immutable `LineModels` (serving, standby, candidate). Switching
lines, rolling back and dropping a misbehaving candidate all replace that one reference, so
the frame loop never waits and never drops a frame: a frame in flight finishes on the models
it started with. The standby (previous serving model) stays loaded, which makes a rollback a
pointer swap rather than a reload.

- `shadow`: the serving model decides; the candidate also runs on the same frame.
- `canary`: the candidate decides a fixed, frame-id-hashed share of frames (the serving model
  still runs on those frames, so agreement is measured and a candidate error costs nothing).
- Safety net: a candidate that raises is dropped on the spot (`fallback` event). A candidate
  past a health gate over its rolling window of recent frames (`edge_puller/gatewindow.py`) is
  dropped too (`rollback` event, `reason` = the gate). The reconciler then writes the
  rollback to git.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from dataclasses import dataclass, replace
from typing import Any, Literal

from edge_puller.gatewindow import GateWindow, Sample, judge
from edge_puller.runtime import Frame, Inputs, LoadedModel, Prediction, preprocess
from edge_puller.target import DEFAULT_GATES, Roi
from linefleet_core.modelio import Box
from linefleet_core.refs import CandidateStage
from linefleet_core.wire import HealthGatesSpec


@dataclass(frozen=True)
class LineModels:
    key: str
    serving: LoadedModel
    standby: LoadedModel | None = None
    candidate: LoadedModel | None = None
    stage: CandidateStage | None = None
    canary_fraction: float = 0.0
    gates: HealthGatesSpec = DEFAULT_GATES


@dataclass(frozen=True)
class Outcome:
    model: str
    label: str
    confidence: float
    latency_ms: float
    boxes: tuple[Box, ...] = ()
    score: float | None = None


@dataclass(frozen=True)
class Decision:
    line: str
    camera: str
    frame_id: str
    decided_by: Literal["serving", "candidate", "none"]
    label: str | None
    confidence: float
    serving: Outcome | None
    candidate: Outcome | None = None
    stage: CandidateStage | None = None
    error: str = ""
    candidate_error: str = ""

    @property
    def model(self) -> str | None:
        chosen = self.candidate if self.decided_by == "candidate" else self.serving
        return chosen.model if chosen else None

    def to_json(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "camera": self.camera,
            "frame_id": self.frame_id,
            "label": self.label,
            "defect": self.label is not None and self.label != "ok",
            "confidence": round(self.confidence, 6),
            "model": self.model,
            "decided_by": self.decided_by,
            "stage": self.stage,
            "serving": _outcome(self.serving),
            "candidate": _outcome(self.candidate),
            "error": self.error,
            "candidate_error": self.candidate_error,
        }


def _outcome(outcome: Outcome | None) -> dict[str, Any] | None:
    if outcome is None:
        return None
    out: dict[str, Any] = {
        "model": outcome.model,
        "label": outcome.label,
        "confidence": round(outcome.confidence, 6),
        "latency_ms": round(outcome.latency_ms, 3),
    }
    if outcome.boxes:
        out["boxes"] = [box.to_json() for box in outcome.boxes]
    if outcome.score is not None:
        out["score"] = round(outcome.score, 6)
    return out


@dataclass(frozen=True)
class EngineEvent:
    """Something the engine did on its own (a fallback), for the outbox and the local state."""

    type: str
    line: str
    reason: str
    message: str
    model: str
    sha256: str


def in_canary(frame_id: str, fraction: float) -> bool:
    """Deterministic per frame id: the same frame always goes the same way."""
    digest = hashlib.blake2b(frame_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64 < fraction


class Engine:
    def __init__(self) -> None:
        self._lines: dict[str, LineModels] = {}
        self._swap = threading.Lock()  # writers only; `infer` reads the reference lock-free
        self._watch: dict[str, GateWindow] = {}
        self._gate_lock = threading.Lock()  # inspection workers of several cameras share a line
        self.events: queue.Queue[EngineEvent] = queue.Queue()

    def lines(self) -> dict[str, LineModels]:
        return self._lines

    def activate(self, models: LineModels) -> None:
        """Switch a line to `models` at once (one reference swap; no frame waits)."""
        self._watch[models.key] = GateWindow()
        with self._swap:
            self._lines = {**self._lines, models.key: models}

    def remove(self, line: str) -> None:
        with self._swap:
            self._lines = {k: v for k, v in self._lines.items() if k != line}

    def drain_events(self) -> list[EngineEvent]:
        found = []
        while True:
            try:
                found.append(self.events.get_nowait())
            except queue.Empty:
                return found

    def infer(
        self, line: str, camera: str, frame_id: str, frame: Frame, roi: Roi | None = None
    ) -> Decision:
        models = self._lines.get(line)
        if models is None:
            return Decision(line, camera, frame_id, "none", None, 0.0, None, error="no model")
        prepared: dict[tuple[Any, ...], Inputs] = {}

        def predict(model: LoadedModel) -> Prediction:
            key = model.contract.prep_key
            if key not in prepared:  # the candidate shares the serving model's input if it can
                prepared[key] = preprocess(frame, model, roi)
            return model.predict(*prepared[key])

        try:
            served = _outcome_of(models.serving, predict(models.serving))
        except Exception as exc:  # a broken frame or model must not stop inspection
            return Decision(
                line,
                camera,
                frame_id,
                "none",
                None,
                0.0,
                None,
                stage=models.stage,
                error=f"serving: {exc}",
            )
        candidate = models.candidate
        decides = (
            models.stage == "canary"
            and candidate is not None
            and in_canary(frame_id, models.canary_fraction)
        )
        runs_candidate = candidate is not None and (models.stage == "shadow" or decides)
        tried: Outcome | None = None
        failure = ""
        if candidate is not None and runs_candidate:
            tried, failure = self._try_candidate(models, candidate, served, predict)
            decides = decides and tried is not None
        chosen = tried if decides and tried is not None else served
        return Decision(
            line=line,
            camera=camera,
            frame_id=frame_id,
            decided_by="candidate" if decides else "serving",
            label=chosen.label,
            confidence=chosen.confidence,
            serving=served,
            candidate=tried,
            stage=models.stage,
            candidate_error=failure,
        )

    def _try_candidate(
        self, models: LineModels, candidate: LoadedModel, served: Outcome, predict: Any
    ) -> tuple[Outcome | None, str]:
        try:
            outcome = _outcome_of(candidate, predict(candidate))
        except Exception as exc:
            message = f"{candidate.spec.ref} raised: {exc}"
            self._drop(models, "fallback", "candidate-error", message)
            return None, message
        sample = Sample(
            latency_ms=outcome.latency_ms,
            agrees=outcome.label == served.label,
            candidate_defect=outcome.label != "ok",
            serving_defect=served.label != "ok",
        )
        with self._gate_lock:
            window = self._watch.setdefault(models.key, GateWindow())
            window.add(sample)
            crossed = judge(window, models.gates, models.stage, candidate.spec.ref)
        if crossed is not None:
            self._drop(models, "rollback", crossed.gate, crossed.message)
        return outcome, ""

    def _drop(self, models: LineModels, kind: str, reason: str, message: str) -> None:
        """Take the candidate off the line at once; the serving model carries on alone."""
        with self._swap:
            current = self._lines.get(models.key)
            if current is None or current.candidate is None:
                return
            spec = current.candidate.spec
            self._lines = {
                **self._lines,
                models.key: replace(current, candidate=None, stage=None, canary_fraction=0.0),
            }
        self.events.put(
            EngineEvent(kind, models.key, reason, message, spec.ref, spec.artifact.sha256)
        )


def _outcome_of(model: LoadedModel, prediction: Prediction) -> Outcome:
    return Outcome(
        model.spec.ref,
        prediction.label,
        prediction.confidence,
        prediction.latency_ms,
        prediction.boxes,
        prediction.score,
    )
