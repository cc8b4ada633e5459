"""ONNX models on the device: load, smoke-test, run per the model contract.

Preprocessing and decisions are the contract's (`linefleet_core/modelio.py`, v1 and v2): the
camera's ROI, tiles, resize, colour order, normalisation, layout; then probabilities, logits,
boxes or an anomaly score by task. A model is only usable after `load_model` has run one smoke
inference and checked its declared outputs (a v1 classifier: `probabilities` is `[1, K]` with K
the taxonomy's class count, finite, summing to 1).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from linefleet_core.errors import PermanentError
from linefleet_core.modelio import (
    Box,
    Contract,
    Frame,
    Placement,
    Roi,
    Tensor,
    decide,
    is_dynamic,
    prepare,
)
from linefleet_core.wire import ModelSpec

Inputs = tuple[Tensor, list[Placement]]
__all__ = ["Frame", "Tensor"]


class ModelLoadError(PermanentError):
    """The model cannot serve: it does not load, or its smoke inference is wrong."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float
    latency_ms: float
    boxes: tuple[Box, ...] = ()
    score: float | None = None


def contract_of(spec: ModelSpec) -> Contract:
    """The model contract of a device model (v1 defaults where the desired state says nothing)."""
    given = spec.input
    layout = given.layout or "NCHW"
    _, a, b, c = given.shape
    height, width = (b, c) if layout == "NCHW" else (a, b)
    norm, tiling = given.normalize, given.tiling
    return Contract(
        classes=tuple(spec.output_classes),
        height=height,
        width=width,
        channels=1 if given.color == "gray" else 3,
        task=spec.task or "classification",
        color=given.color,
        layout=layout,
        resize=given.resize or "stretch",
        scale=norm.scale if norm else 1 / 255,
        mean=tuple(norm.mean) if norm and norm.mean else None,
        std=tuple(norm.std) if norm and norm.std else None,
        tiling=(tiling.size, tiling.overlap) if tiling else None,
        input_name=given.name,
        outputs=spec.outputs.model_dump(exclude_none=True) if spec.outputs else {},
    )


class LoadedModel:
    """A smoke-tested inference session for one model version."""

    def __init__(self, spec: ModelSpec, session: ort.InferenceSession) -> None:
        self.spec = spec
        self.session = session
        self.contract = contract_of(spec)
        first = session.get_inputs()[0]
        self.input_name: str = spec.input.name or first.name
        declared = {i.name: i for i in session.get_inputs()}.get(self.input_name, first)
        self.batched = bool(declared.shape) and is_dynamic(declared.shape[0])
        """The graph takes any batch size: all tiles of a frame go in one run."""
        self.outputs = self.contract.output_names()

    def run(self, batch: Tensor) -> tuple[list[Any], float]:
        """The outputs for a batch of inputs (one run, or one per input) and the time taken."""
        start = time.perf_counter()
        if self.batched or batch.shape[0] == 1:
            outputs = list(self.session.run(self.outputs, {self.input_name: batch}))
        else:
            runs = [self.session.run(self.outputs, {self.input_name: batch[i : i + 1]})
                    for i in range(batch.shape[0])]  # fmt: skip
            outputs = [
                np.concatenate([np.asarray(r[k]) for r in runs]) for k in range(len(runs[0]))
            ]
        return outputs, (time.perf_counter() - start) * 1000.0

    def predict(self, batch: Tensor, places: list[Placement]) -> Prediction:
        outputs, latency_ms = self.run(batch)
        try:
            verdict = decide(self.contract, outputs, places)
        except ValueError as exc:
            # argmax over NaN is 0 ("ok" in most taxonomies): never let that pass as a decision
            raise ValueError(f"{self.spec.ref}: {exc}") from None
        return Prediction(
            verdict.label, verdict.confidence, latency_ms, verdict.boxes, verdict.score
        )


def preprocess(frame: Frame, model: LoadedModel, roi: Roi | None = None) -> Inputs:
    """A BGR uint8 frame as the model's inputs (one per tile) per its contract."""
    return prepare(frame, model.contract, roi)


def load_model(path: Path, spec: ModelSpec, threads: int = 1) -> LoadedModel:
    """Open `path` in onnxruntime and smoke-test it against `spec`, or raise `ModelLoadError`."""
    ort.set_default_logger_severity(4)  # errors reach us as exceptions, not as log spam
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own unrelated exception types
        raise ModelLoadError(
            "load-failed", f"{spec.ref}: onnxruntime cannot load it: {exc}"
        ) from None
    model = LoadedModel(spec, session)
    _smoke_test(model)
    return model


def _smoke_test(model: LoadedModel) -> None:
    spec = model.spec
    inputs = [i.name for i in model.session.get_inputs()]
    if model.input_name not in inputs:
        raise ModelLoadError("smoke-failed", f"{spec.ref}: no input named {model.input_name!r}")
    outputs = [o.name for o in model.session.get_outputs()]
    for name in model.outputs:
        if name not in outputs:
            raise ModelLoadError(
                "smoke-failed", f"{spec.ref}: no output named {name!r} ({outputs})"
            )
    # A seeded noise texture, not a flat frame: some feature graphs divide by the frame's own
    # variation (the serving path refuses their non-finite outputs per frame instead).
    texture = np.random.default_rng(0).random(spec.input.shape, dtype=np.float32)
    try:
        raw: list[Any] = model.session.run(model.outputs, {model.input_name: texture})
    except Exception as exc:
        raise ModelLoadError("smoke-failed", f"{spec.ref}: smoke inference failed: {exc}") from None
    if model.contract.task == "classification" and not model.contract.outputs.get("logits"):
        _smoke_probabilities(spec, model.outputs[0], np.asarray(raw[0]))
    place = Placement(0, 0, 1.0, 1.0)
    try:
        decide(model.contract, raw, [place] * spec.input.shape[0])
    except ValueError as exc:
        raise ModelLoadError("smoke-failed", f"{spec.ref}: {exc}") from None


def _smoke_probabilities(spec: ModelSpec, name: str, out: Any) -> None:
    expected = (spec.input.shape[0], len(spec.output_classes))
    if out.shape != expected:
        raise ModelLoadError(
            "smoke-failed",
            f"{spec.ref}: {name} has shape {list(out.shape)}, expected {list(expected)} "
            f"(the taxonomy has {len(spec.output_classes)} classes)",
        )
    if not np.all(np.isfinite(out)) or np.any(np.abs(out.sum(axis=1) - 1.0) > 1e-3):
        raise ModelLoadError(
            "smoke-failed", f"{spec.ref}: {name} is not a probability distribution"
        )


class ModelCache:
    """Loaded models by sha256: the serving, standby and candidate sessions of every line."""

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self._models: dict[str, LoadedModel] = {}

    def get(self, sha256: str) -> LoadedModel | None:
        return self._models.get(sha256)

    def loaded(self) -> frozenset[str]:
        return frozenset(self._models)

    def load(self, path: Path, spec: ModelSpec) -> LoadedModel:
        model = self._models.get(spec.artifact.sha256)
        if model is None:
            model = load_model(path, spec, self.threads)
            self._models[spec.artifact.sha256] = model
        return model

    def unload(self, sha256: str) -> None:
        self._models.pop(sha256, None)
