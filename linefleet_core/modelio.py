"""The model contract (v1 and v2) as code: from a frame to the model's input, and from the model's
outputs to a decision. Shared by the edge (serving) and the trainer (per-line evaluation), so a
model is judged on exactly what it will see on the line.

Preprocessing, in order: the camera's region of interest; tiles (`tiling`: size and overlap in
frame pixels, the last tile of a row or column aligned with the edge); each tile resized to the
model's input (`stretch`, or `letterbox`: aspect kept, padded with grey 114); colour order
(`rgb`, `bgr`, `gray`); `x * scale`, minus `mean`, divided by `std` per channel; `NCHW` or
`NHWC`. Contract v1 is the special case: whole frame, stretch, `x / 255`, NCHW.

Decisions by task (`decide`): `classification` reads probabilities (or logits, softmaxed); with
tiles the frame's decision is the tile least likely `ok`. `detection` reads YOLO-style boxes,
keeps those whose score passes their class's threshold (after non-maximum suppression, boxes in
frame pixels), and decides the class of the best box, or `ok` when none passes. `anomaly` reads
one score per tile, takes the highest, and decides the defect class at or above `threshold`;
its confidence maps the threshold to 0.5 (`min(1, 0.5 * score / threshold)` for the defect).

Needs numpy and OpenCV (the `edge` extra); the contract's types (`linefleet_core.catalogue`)
do not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from linefleet_core.catalogue import ModelVersion, output_names

Frame = npt.NDArray[np.uint8]
Tensor = npt.NDArray[np.float32]
Roi = tuple[int, int, int, int]
LETTERBOX_FILL = 114
MAX_BOXES = 100


@dataclass(frozen=True)
class Contract:
    """Everything needed to feed a model and read its answer (no I/O)."""

    classes: tuple[str, ...]
    height: int
    width: int
    channels: int = 3
    task: str = "classification"
    color: str = "rgb"
    layout: str = "NCHW"
    resize: str = "stretch"
    scale: float = 1 / 255
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    tiling: tuple[int, int] | None = None
    input_name: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)

    @property
    def prep_key(self) -> tuple[Any, ...]:
        """Models with the same key take the same input tensors (computed once per frame)."""
        return (
            self.height, self.width, self.channels, self.color, self.layout, self.resize,
            self.scale, self.mean, self.std, self.tiling,
        )  # fmt: skip

    def output_names(self) -> list[str]:
        """The graph outputs the task reads, in a fixed order (the decision reads the first)."""
        return output_names(self.task, self.outputs)


def contract_of_version(mv: ModelVersion) -> Contract:
    """The contract a catalogue entry declares (the trainer scores a model exactly so)."""
    spec = mv.input
    norm = spec.normalize
    return Contract(
        classes=tuple(mv.output_classes),
        height=spec.height,
        width=spec.width,
        channels=spec.channels,
        task=mv.task,
        color=spec.color,
        layout=spec.layout,
        resize=spec.resize,
        scale=norm.scale,
        mean=None if norm.mean is None else tuple(norm.mean),
        std=None if norm.std is None else tuple(norm.std),
        tiling=None if spec.tiling is None else (spec.tiling.size, spec.tiling.overlap),
        input_name=spec.name,
        outputs=mv.outputs.model_dump(exclude_none=True, exclude_defaults=True),
    )


def run_session(session: Any, c: Contract, batch: Tensor) -> list[Any]:
    """Run an onnxruntime session on a batch of inputs, one input at a time (any graph)."""
    name = c.input_name or session.get_inputs()[0].name
    names = c.output_names()
    runs = [session.run(names, {name: batch[i : i + 1]}) for i in range(batch.shape[0])]
    return [np.concatenate([np.asarray(r[k]) for r in runs]) for k in range(len(names))]


@dataclass(frozen=True)
class Placement:
    """Where one model input came from: model pixel (mx, my) is frame pixel
    (x0 + (mx - pad_x) / sx, y0 + (my - pad_y) / sy)."""

    x0: int
    y0: int
    sx: float
    sy: float
    pad_x: float = 0.0
    pad_y: float = 0.0

    def to_frame(self, x: float, y: float) -> tuple[float, float]:
        return self.x0 + (x - self.pad_x) / self.sx, self.y0 + (y - self.pad_y) / self.sy


@dataclass(frozen=True)
class Box:
    label: str
    score: float
    x1: float
    y1: float
    x2: float
    y2: float

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "score": round(self.score, 4),
            "box": [round(self.x1, 1), round(self.y1, 1), round(self.x2, 1), round(self.y2, 1)],
        }


@dataclass(frozen=True)
class Verdict:
    label: str
    confidence: float
    boxes: tuple[Box, ...] = ()
    score: float | None = None
    """The anomaly score (anomaly models)."""
    tile: int | None = None
    """The tile that decided (with tiling)."""


# --- preprocessing ----------------------------------------------------------------------------


def _starts(length: int, size: int, overlap: int) -> list[int]:
    if length <= size:
        return [0]
    stride = size - overlap
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] != length - size:
        starts.append(length - size)
    return starts


def tiles(width: int, height: int, tiling: tuple[int, int] | None) -> list[Roi]:
    """The tiles of a width x height image, row by row."""
    if tiling is None:
        return [(0, 0, width, height)]
    size, overlap = tiling
    return [
        (x, y, min(size, width - x), min(size, height - y))
        for y in _starts(height, size, overlap)
        for x in _starts(width, size, overlap)
    ]


def interpolation(width: int, height: int, to_width: int, to_height: int) -> int:
    """How a frame is stretched to the model's input, here and in the trainer
    (`trainer.features.to_tensor`): area averaging when both sides shrink, else bilinear."""
    return cv2.INTER_AREA if to_width <= width and to_height <= height else cv2.INTER_LINEAR


def _resize(image: Frame, c: Contract, x0: int, y0: int) -> tuple[Frame, Placement]:
    h, w = image.shape[:2]
    if (h, w) == (c.height, c.width):
        return image, Placement(x0, y0, 1.0, 1.0)
    if c.resize == "letterbox":
        s = min(c.width / w, c.height / h)
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        inter = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
        scaled = cv2.resize(image, (nw, nh), interpolation=inter)
        top, left = (c.height - nh) // 2, (c.width - nw) // 2
        boxed = np.full((c.height, c.width, image.shape[2]), LETTERBOX_FILL, dtype=np.uint8)
        boxed[top : top + nh, left : left + nw] = scaled
        return boxed, Placement(x0, y0, nw / w, nh / h, float(left), float(top))
    out = cv2.resize(
        image, (c.width, c.height), interpolation=interpolation(w, h, c.width, c.height)
    )
    return np.asarray(out, dtype=np.uint8), Placement(x0, y0, c.width / w, c.height / h)


def _tensor(image: Frame, c: Contract) -> Tensor:
    converted: Any = image
    if c.color == "rgb":
        converted = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif c.color == "gray":
        converted = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)[:, :, np.newaxis]
    x = np.asarray(converted).astype(np.float32)
    x *= np.float32(c.scale)
    if c.mean is not None:
        x -= np.asarray(c.mean, dtype=np.float32)
    if c.std is not None:
        x /= np.asarray(c.std, dtype=np.float32)
    return np.transpose(x, (2, 0, 1)) if c.layout == "NCHW" else x


def crop(frame: Frame, roi: Roi | None) -> tuple[Frame, int, int]:
    """The camera's region of interest (clipped to the frame) and its origin."""
    if roi is None:
        return frame, 0, 0
    x, y, w, h = roi
    fh, fw = frame.shape[:2]
    x, y = min(max(0, x), fw - 1), min(max(0, y), fh - 1)
    return frame[y : min(fh, y + h), x : min(fw, x + w)], x, y


def prepare(frame: Frame, c: Contract, roi: Roi | None = None) -> tuple[Tensor, list[Placement]]:
    """The batch of model inputs for one BGR frame ([T, ...], one per tile) and their places."""
    image, ox, oy = crop(frame, roi)
    h, w = image.shape[:2]
    inputs: list[Tensor] = []
    places: list[Placement] = []
    for tx, ty, tw, th in tiles(w, h, c.tiling):
        part, place = _resize(image[ty : ty + th, tx : tx + tw], c, ox + tx, oy + ty)
        inputs.append(_tensor(part, c))
        places.append(place)
    return np.ascontiguousarray(np.stack(inputs)), places


# --- decisions ---------------------------------------------------------------------------------


def _rows(array: Any, count: int, name: str) -> npt.NDArray[np.float32]:
    out = np.asarray(array, dtype=np.float32)
    if out.ndim == 0 or out.shape[0] != count:
        raise ValueError(
            f"{name}: expected one row per input ({count}), got shape {list(out.shape)}"
        )
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name}: not a finite output")
    return out.reshape(count, -1)


def softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=1, keepdims=True), dtype=np.float32)


def decide(c: Contract, outputs: list[Any], places: list[Placement]) -> Verdict:
    """The frame's decision from the model's outputs for its tiles (`Contract.output_names`
    order); a malformed or non-finite output raises ValueError (never a silent `ok`)."""
    if c.task == "detection":
        return _detection(c, outputs[0], places)
    if c.task == "anomaly":
        return _anomaly(c, outputs[0], len(places))
    return _classification(c, outputs[0], len(places))


def _classification(c: Contract, output: Any, count: int) -> Verdict:
    name = c.output_names()[0]
    rows = _rows(output, count, name)
    if rows.shape[1] != len(c.classes):
        raise ValueError(f"{name}: {rows.shape[1]} values per input, expected {len(c.classes)}")
    probabilities = softmax(rows) if c.outputs.get("logits") else rows
    if "ok" in c.classes:
        worst = int(np.argmin(probabilities[:, c.classes.index("ok")]))
    else:
        worst = int(np.argmax(probabilities.max(axis=1)))
    row = probabilities[worst]
    index = int(np.argmax(row))
    return Verdict(c.classes[index], float(row[index]), tile=worst if count > 1 else None)


def _anomaly(c: Contract, output: Any, count: int) -> Verdict:
    name = c.output_names()[0]
    scores = _rows(output, count, name)[:, 0]
    worst = int(np.argmax(scores))
    score = float(scores[worst])
    threshold = float(c.outputs["threshold"])
    p = min(1.0, max(0.0, 0.5 * score / threshold)) if threshold > 0 else float(score >= 0)
    defect = score >= threshold
    label = c.classes[1] if defect else c.classes[0]
    return Verdict(label, p if defect else 1.0 - p, score=score, tile=worst if count > 1 else None)


def _detection(c: Contract, output: Any, places: list[Placement]) -> Verdict:
    name = c.output_names()[0]
    k = len(c.classes)
    raw = np.asarray(output, dtype=np.float32)
    if raw.ndim != 3 or raw.shape[0] != len(places):
        raise ValueError(f"{name}: expected [batch, 4+K, N] boxes, got shape {list(raw.shape)}")
    if not np.all(np.isfinite(raw)):
        raise ValueError(f"{name}: not a finite output")
    v5 = c.outputs.get("box_format") == "yolov5"
    width = 5 + k if v5 else 4 + k
    thresholds = c.outputs.get("score_thresholds") or {}
    default = float(c.outputs.get("default_score_threshold", 0.5))
    limits = np.asarray([float(thresholds.get(cls, default)) for cls in c.classes], np.float32)
    found: list[Box] = []
    best = 0.0
    for tile, place in enumerate(places):
        rows = raw[tile] if v5 else raw[tile].T
        if rows.shape[1] != width:
            raise ValueError(
                f"{name}: {rows.shape[1]} values per box, expected {width} for {k} classes "
                f"({'yolov5' if v5 else 'yolov8'})"
            )
        scores = rows[:, 5:] * rows[:, 4:5] if v5 else rows[:, 4:]
        if scores.size == 0:
            continue
        classes = scores.argmax(axis=1)
        top = scores.max(axis=1)
        best = max(best, float(top.max()))
        for i in np.flatnonzero(top >= limits[classes]):
            cx, cy, bw, bh = (float(v) for v in rows[i, :4])
            x1, y1 = place.to_frame(cx - bw / 2, cy - bh / 2)
            x2, y2 = place.to_frame(cx + bw / 2, cy + bh / 2)
            found.append(Box(c.classes[int(classes[i])], float(top[i]), x1, y1, x2, y2))
    kept = _nms(found, float(c.outputs.get("iou_threshold", 0.45)))
    if kept:
        return Verdict(kept[0].label, kept[0].score, boxes=tuple(kept))
    return Verdict("ok", min(1.0, max(0.0, 1.0 - best)))


def _nms(boxes: list[Box], iou: float) -> list[Box]:
    """Greedy non-maximum suppression per class, best first, at most `MAX_BOXES`."""
    kept: list[Box] = []
    for box in sorted(boxes, key=lambda b: -b.score):
        if all(b.label != box.label or _iou(b, box) < iou for b in kept):
            kept.append(box)
            if len(kept) == MAX_BOXES:
                break
    return kept


def _iou(a: Box, b: Box) -> float:
    w = min(a.x2, b.x2) - max(a.x1, b.x1)
    h = min(a.y2, b.y2) - max(a.y1, b.y1)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter
    return inter / union if union > 0 else 0.0


def is_dynamic(dim: Any) -> bool:
    """An ONNX dimension that is not a fixed integer (a name, None, or -1)."""
    return not isinstance(dim, int) or dim < 0 or math.isnan(dim)
