"""ONNX models on the device: load, smoke-test, preprocess frames per the model contract.

Preprocessing is exactly the contract's: BGR frame → `cv2.resize(..., INTER_AREA)` to the
model's WxH → its colour order → float32 / 255 → CHW → batch of one. Everything else is
inside the graph. A model is only usable after `load_model` has run one smoke inference and
checked that `probabilities` is `[1, K]` with K the taxonomy's class count, finite, summing to 1.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from edge_puller.target import Color, ModelSpec
from linefleet_core.errors import PermanentError

OUTPUT = "probabilities"
Tensor = npt.NDArray[np.float32]
Frame = npt.NDArray[np.uint8]


class ModelLoadError(PermanentError):
    """The model cannot serve: it does not load, or its smoke inference is wrong."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Prediction:
    probabilities: npt.NDArray[np.float32]
    index: int
    latency_ms: float

    @property
    def confidence(self) -> float:
        return float(self.probabilities[self.index])


class LoadedModel:
    """A smoke-tested inference session for one model version."""

    def __init__(self, spec: ModelSpec, session: ort.InferenceSession) -> None:
        self.spec = spec
        self.session = session
        self.input_name: str = session.get_inputs()[0].name

    def predict(self, tensor: Tensor) -> Prediction:
        start = time.perf_counter()
        (probabilities,) = self.session.run([OUTPUT], {self.input_name: tensor})
        latency_ms = (time.perf_counter() - start) * 1000.0
        row = np.asarray(probabilities, dtype=np.float32).reshape(-1)
        if row.shape != (len(self.spec.classes),) or not np.all(np.isfinite(row)):
            # argmax over NaN is 0 ("ok" in most taxonomies): never let that pass as a decision
            raise ValueError(f"{self.spec.ref}: {OUTPUT} is not a finite [1, K] row: {row}")
        return Prediction(row, int(np.argmax(row)), latency_ms)

    def label(self, prediction: Prediction) -> str:
        return self.spec.classes[prediction.index]


def preprocess(frame: Frame, shape: tuple[int, int, int, int], color: Color) -> Tensor:
    """A BGR uint8 frame as the model's input tensor `[1, C, H, W]` in [0, 1]."""
    _, _, height, width = shape
    resized = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
    if color == "rgb":
        converted = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
    elif color == "gray":
        converted = cv2.cvtColor(resized, cv2.COLOR_BGR2GRAY)[:, :, np.newaxis]
    else:
        converted = resized
    chw = np.transpose(converted.astype(np.float32) / 255.0, (2, 0, 1))
    return np.ascontiguousarray(chw[np.newaxis])


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
    outputs = [o.name for o in model.session.get_outputs()]
    if OUTPUT not in outputs:
        raise ModelLoadError("smoke-failed", f"{spec.ref}: no output named {OUTPUT!r} ({outputs})")
    # A seeded noise texture, not a flat frame: some feature graphs divide by the frame's own
    # variation (the serving path refuses their non-finite outputs per frame instead).
    texture = np.random.default_rng(0).random(spec.input_shape, dtype=np.float32)
    try:
        raw: Any = model.session.run([OUTPUT], {model.input_name: texture})[0]
    except Exception as exc:
        raise ModelLoadError("smoke-failed", f"{spec.ref}: smoke inference failed: {exc}") from None
    out = np.asarray(raw)
    expected = (1, len(spec.classes))
    if out.shape != expected:
        raise ModelLoadError(
            "smoke-failed",
            f"{spec.ref}: {OUTPUT} has shape {list(out.shape)}, expected {list(expected)} "
            f"(the taxonomy has {len(spec.classes)} classes)",
        )
    if not np.all(np.isfinite(out)) or abs(float(out.sum()) - 1.0) > 1e-3:
        raise ModelLoadError(
            "smoke-failed", f"{spec.ref}: {OUTPUT} is not a probability distribution"
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
        model = self._models.get(spec.sha256)
        if model is None:
            model = load_model(path, spec, self.threads)
            self._models[spec.sha256] = model
        return model

    def unload(self, sha256: str) -> None:
        self._models.pop(sha256, None)
