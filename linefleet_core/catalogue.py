"""The model catalogue: every model version that may run on a line, with its evidence."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, field_validator, model_validator

from linefleet_core import artifactref
from linefleet_core.model import Header, Strict
from linefleet_core.refs import ColorOrder, Id, ModelTask, VersionedRef

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class Artifact(Strict):
    url: str = Field(min_length=1, max_length=2048)
    """A path inside the repository (`fleet/artifacts/m.onnx`, or `file://fleet/...`), or a
    URL with a scheme of `artifactref.REMOTE_SCHEMES` (`oci://HOST/REPO@sha256:…`, a registry
    blob from `linefleet artifacts push`; `https://`); `validate` checks the file is there."""
    sha256: Sha256
    size: int = Field(gt=0)

    @field_validator("url")
    @classmethod
    def _usable(cls, value: str) -> str:
        artifactref.parse(value)
        return value


Task = ModelTask
Layout = Literal["NCHW", "NHWC"]
ResizeMode = Literal["stretch", "letterbox"]
BoxFormat = Literal["yolov8", "yolov5"]
TensorName = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class Normalize(Strict):
    """Model input = (pixel * scale - mean) / std, per channel in the model's colour order."""

    scale: float = Field(default=1 / 255, gt=0)
    mean: list[float] | None = Field(default=None, min_length=1, max_length=3)
    std: list[float] | None = Field(default=None, min_length=1, max_length=3)

    @model_validator(mode="after")
    def _positive_std(self) -> Self:
        if self.std is not None and any(s <= 0 for s in self.std):
            raise ValueError("std values must be > 0")
        return self


class Tiling(Strict):
    """Cut the frame (after the camera's ROI) into `size`-px tiles overlapping by `overlap` px;
    each tile is one model input and the frame's decision is the worst tile's."""

    size: int = Field(ge=16, le=16384)
    overlap: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _overlap(self) -> Self:
        if self.overlap >= self.size:
            raise ValueError("overlap must be smaller than size")
        return self


MAX_TILES_PER_FRAME = 4096
"""The most tiles a tiling may cut one camera frame into (`validate` refuses more on a line's
camera, a device refuses such a desired state). The edge benchmark (`docs/benchmarks.md`,
"Tiling") decides 80 tiles of a 2448x2048 frame in 0.156 s, about 2 ms a tile on a 2-core
device: 4,096 tiles are some 8 s of inference a frame, already far behind any camera, and
are what the largest resolution the fleet admits (16384 x 16384) makes in 256-px tiles
without overlap. The catalogue's own limits allowed 16-px tiles overlapping by 15 px: 134
million tiles on a 2^27-pixel frame, days of work and gigabytes of tile list per frame."""


def tile_count(width: int, height: int, size: int, overlap: int) -> int:
    """How many tiles `linefleet_core.modelio.tiles` cuts a width x height image into (counted,
    not listed: the list of a bad tiling is what must not be built)."""

    def along(length: int) -> int:
        return 1 if length <= size else -(-(length - size) // (size - overlap)) + 1

    return along(width) * along(height)


def too_many_tiles(width: int, height: int, size: int, overlap: int) -> str | None:
    """Why a tiling cuts a width x height frame into more than MAX_TILES_PER_FRAME tiles."""
    count = tile_count(width, height, size, overlap)
    if count <= MAX_TILES_PER_FRAME:
        return None
    return (
        f"tiling size {size}, overlap {overlap} cuts a {width}x{height} frame into "
        f"{count:,} tiles; at most {MAX_TILES_PER_FRAME:,} a frame (larger tiles, or less "
        "overlap)"
    )


class InputSpec(Strict):
    shape: list[int] = Field(min_length=4, max_length=4)
    """In `layout` order: NCHW [1, channels, height, width], NHWC [1, height, width, channels]."""
    color: ColorOrder = "rgb"
    name: TensorName | None = None
    """The graph's input (default: its first input)."""
    layout: Layout = "NCHW"
    resize: ResizeMode = "stretch"
    """`stretch` to the input size, or `letterbox` (keep the aspect ratio, pad with grey 114)."""
    normalize: Normalize = Normalize()
    tiling: Tiling | None = None

    @property
    def channels(self) -> int:
        return self.shape[1] if self.layout == "NCHW" else self.shape[3]

    @property
    def height(self) -> int:
        return self.shape[2] if self.layout == "NCHW" else self.shape[1]

    @property
    def width(self) -> int:
        return self.shape[3] if self.layout == "NCHW" else self.shape[2]


class Outputs(Strict):
    """The graph outputs the task reads, by name. Classification: `probabilities` (default
    `probabilities`) or `logits` (turned into probabilities by softmax). Detection: `boxes` in
    `box_format` (`yolov8`: [1, 4+K, N] of cx, cy, w, h, class scores; `yolov5`: [1, N, 5+K] with
    objectness), a frame is a defect when a box's score passes its class's threshold. Anomaly:
    `score` (one number per frame), optional `map`, defect when score >= `threshold`."""

    probabilities: TensorName | None = None
    logits: TensorName | None = None
    boxes: TensorName | None = None
    box_format: BoxFormat = "yolov8"
    score_thresholds: dict[str, float] = Field(default_factory=dict)
    """Per class id (detection); classes not named use `default_score_threshold`."""
    default_score_threshold: float = Field(default=0.5, gt=0, le=1)
    iou_threshold: float = Field(default=0.45, gt=0, le=1)
    score: TensorName | None = None
    map: TensorName | None = None
    threshold: float | None = None
    """Anomaly score at or above which a frame is a defect."""


def output_names(task: str, outputs: Mapping[str, object]) -> list[str]:
    """The graph outputs a model of `task` is read from (`outputs` as a mapping of the set
    fields): what the edge fetches and what `validate` looks for in the graph."""
    if task == "detection":
        return [str(outputs["boxes"])]
    if task == "anomaly":
        names = [str(outputs["score"])]
        return names + ([str(outputs["map"])] if outputs.get("map") else [])
    return [str(outputs.get("logits") or outputs.get("probabilities") or "probabilities")]


def check_outputs(task: Task, outputs: Outputs, classes: list[str]) -> list[tuple[str, str]]:
    """Problems of an `outputs` block for `task` as (field, message) pairs (pure)."""
    found: list[tuple[str, str]] = []
    if task == "classification":
        if outputs.probabilities and outputs.logits:
            found.append(("logits", "name either probabilities or logits, not both"))
        if len(classes) < 2:
            found.append(("output_classes", "a classifier has at least two classes"))
    other = {
        "classification": ("boxes", "score", "map", "threshold"),
        "detection": ("probabilities", "logits", "score", "map", "threshold"),
        "anomaly": ("probabilities", "logits", "boxes"),
    }[task]
    for field in other:
        if getattr(outputs, field) is not None:
            found.append((field, f"not an output of a {task} model"))
    if task == "detection":
        if outputs.boxes is None:
            found.append(("boxes", "a detection model names its boxes output"))
        if "ok" in classes:
            found.append(("output_classes", "a detector's classes are defect classes, not 'ok'"))
        for name, value in outputs.score_thresholds.items():
            if name not in classes:
                found.append((f"score_thresholds.{name}", "not one of the output_classes"))
            elif not 0 < value <= 1:
                found.append((f"score_thresholds.{name}", "a score threshold is in (0, 1]"))
    if task == "anomaly":
        if outputs.score is None:
            found.append(("score", "an anomaly model names its score output"))
        if outputs.threshold is None:
            found.append(("threshold", "an anomaly model needs a decision threshold"))
        if len(classes) != 2 or classes[0] != "ok":
            found.append(("output_classes", "an anomaly model's classes are [ok, DEFECT_CLASS]"))
    return found


class Rate(Strict):
    """`count` of `of` frames, with its 95% Wilson interval [low, high]."""

    value: float = Field(ge=0, le=1)
    low: float = Field(ge=0, le=1)
    high: float = Field(ge=0, le=1)
    count: int = Field(ge=0)
    of: int = Field(ge=0)


class LineEvidence(Strict):
    """The candidate and the line's incumbent scored on the same holdout of that line."""

    metric: Literal["accuracy", "macro_f1", "defect_recall"]
    candidate: float = Field(ge=0, le=1)
    incumbent: float | None = Field(default=None, ge=0, le=1)
    incumbent_model: VersionedRef | None = None
    holdout_frames: int = Field(ge=1)
    dataset: str = Field(min_length=1)
    escape_rate: Rate | None = None
    """Defect frames the candidate called `ok`, of all defect frames of the holdout."""
    false_reject_rate: Rate | None = None
    """`ok` frames the candidate called a defect, of all `ok` frames of the holdout."""
    recall: dict[Id, Rate] = Field(default_factory=dict)
    """Per class of the taxonomy with holdout frames on this line."""
    confusion: list[list[int]] | None = None
    """Rows: truth, columns: prediction, in `output_classes` order."""
    incumbent_flag: str | None = None
    """Why the incumbent's score is not a fair comparison (scored 0, classes missing)."""


class ModelVersion(Strict):
    version: int = Field(ge=1)
    taxonomy: VersionedRef
    task: Task = "classification"
    output_classes: list[Id] = Field(min_length=1)
    """In output order. Classification: the taxonomy version's classes. Detection: the
    detector's class index -> taxonomy class (no `ok`). Anomaly: [ok, the defect class]."""
    artifact: Artifact
    input: InputSpec
    outputs: Outputs = Outputs()
    opset: int = Field(ge=7, le=30)
    execution_providers: list[str] = Field(default_factory=lambda: ["CPUExecutionProvider"])
    reference_stats: dict[str, float] = Field(default_factory=dict)
    """Input statistics of the training frames (brightness, contrast, ...) for edge drift scores."""
    mlflow_run_id: str | None = None
    dataset: str | None = None
    trained_on: list[str] = Field(default_factory=list)
    """The `site/line` keys whose frames trained this version (empty: not recorded)."""
    evaluation: dict[str, LineEvidence] = Field(default_factory=dict)
    """Per-line evidence keyed by `site/line`."""

    @model_validator(mode="after")
    def _task_outputs(self) -> Self:
        problems = check_outputs(self.task, self.outputs, self.output_classes)
        if problems:
            raise ValueError("; ".join(f"outputs.{f}: {m}" for f, m in problems))
        return self


class ModelFamily(Header):
    kind: Literal["Model"]
    name: Id
    description: str = ""
    versions: list[ModelVersion] = Field(min_length=1)
