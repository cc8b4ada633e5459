"""What the device should run: the edge's own view of a verified desired-state document.

The wire document (`linefleet_core.wire`) is translated into these small frozen values once,
right after its signature and generation are checked; the planner, the runtime and the local
state only ever see them. `to_dict`/`from_dict` give the JSON form kept in the state file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from linefleet_core.fleet import HealthGates, TelemetryPolicy
from linefleet_core.refs import CandidateStage, ColorOrder, ModelTask

Stage = CandidateStage
Color = ColorOrder
Task = ModelTask
Roi = tuple[int, int, int, int]
"""x, y, width, height in frame pixels."""


@dataclass(frozen=True)
class ModelSpec:
    """One model version as the device needs it: where to get it and how to feed it."""

    ref: str
    sha256: str
    size: int
    url: str
    classes: tuple[str, ...]
    input_shape: tuple[int, int, int, int]
    color: Color = "rgb"
    reference_stats: dict[str, float] = field(default_factory=dict, hash=False, compare=True)
    # model contract v2 (the defaults are contract v1)
    task: Task = "classification"
    input_name: str | None = None
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    resize: Literal["stretch", "letterbox"] = "stretch"
    scale: float = 1 / 255
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    tiling: tuple[int, int] | None = None
    """Tile size and overlap in frame pixels."""
    outputs: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)
    """The wire's `outputs` (only the fields set)."""

    @property
    def height_width(self) -> tuple[int, int]:
        _, a, b, c = self.input_shape
        return (b, c) if self.layout == "NCHW" else (a, b)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "sha256": self.sha256,
            "size": self.size,
            "url": self.url,
            "classes": list(self.classes),
            "input_shape": list(self.input_shape),
            "color": self.color,
            "reference_stats": dict(self.reference_stats),
            "task": self.task,
            "input_name": self.input_name,
            "layout": self.layout,
            "resize": self.resize,
            "scale": self.scale,
            "mean": None if self.mean is None else list(self.mean),
            "std": None if self.std is None else list(self.std),
            "tiling": None if self.tiling is None else list(self.tiling),
            "outputs": dict(self.outputs),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        n, c, h, w = (int(v) for v in data["input_shape"])
        return cls(
            ref=str(data["ref"]),
            sha256=str(data["sha256"]),
            size=int(data["size"]),
            url=str(data["url"]),
            classes=tuple(str(c) for c in data["classes"]),
            input_shape=(n, c, h, w),
            color=data.get("color", "rgb"),
            reference_stats={str(k): float(v) for k, v in data.get("reference_stats", {}).items()},
            task=data.get("task", "classification"),
            input_name=data.get("input_name"),
            layout=data.get("layout", "NCHW"),
            resize=data.get("resize", "stretch"),
            scale=float(data.get("scale", 1 / 255)),
            mean=None if data.get("mean") is None else tuple(float(v) for v in data["mean"]),
            std=None if data.get("std") is None else tuple(float(v) for v in data["std"]),
            tiling=None if data.get("tiling") is None else (data["tiling"][0], data["tiling"][1]),
            outputs=dict(data.get("outputs") or {}),
        )


@dataclass(frozen=True)
class CandidateSpec:
    model: ModelSpec
    stage: Stage
    canary_fraction: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.to_dict(),
            "stage": self.stage,
            "canary_fraction": self.canary_fraction,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CandidateSpec:
        return cls(
            model=ModelSpec.from_dict(data["model"]),
            stage=data["stage"],
            canary_fraction=float(data.get("canary_fraction") or 0.0),
        )


@dataclass(frozen=True)
class LineTarget:
    """One line this device serves: the serving model, the candidate, the rollback target."""

    key: str
    cameras: tuple[str, ...]
    serving: ModelSpec
    candidate: CandidateSpec | None = None
    previous: ModelSpec | None = None
    telemetry: TelemetryPolicy = field(default_factory=TelemetryPolicy)
    gates: HealthGates = field(default_factory=HealthGates)
    rois: dict[str, Roi] = field(default_factory=dict, hash=False, compare=True)
    """Per camera: the region of interest its frames are cut to before any model sees them."""
    novelty: ModelSpec | None = None
    """The line's input-novelty model (an anomaly model); None: frame-statistics novelty."""

    def models(self) -> list[ModelSpec]:
        """Every model the line needs on disk and loaded, serving first."""
        found = [self.serving]
        if self.candidate is not None:
            found.append(self.candidate.model)
        if self.previous is not None:
            found.append(self.previous)
        if self.novelty is not None:
            found.append(self.novelty)
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "cameras": list(self.cameras),
            "serving": self.serving.to_dict(),
            "candidate": self.candidate.to_dict() if self.candidate else None,
            "previous": self.previous.to_dict() if self.previous else None,
            "telemetry": self.telemetry.model_dump(mode="json"),
            "gates": self.gates.model_dump(mode="json"),
            "rois": {camera: list(roi) for camera, roi in sorted(self.rois.items())},
            "novelty": self.novelty.to_dict() if self.novelty else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LineTarget:
        return cls(
            key=str(data["key"]),
            cameras=tuple(str(c) for c in data["cameras"]),
            serving=ModelSpec.from_dict(data["serving"]),
            candidate=CandidateSpec.from_dict(data["candidate"]) if data.get("candidate") else None,
            previous=ModelSpec.from_dict(data["previous"]) if data.get("previous") else None,
            telemetry=TelemetryPolicy.model_validate(data.get("telemetry", {}), strict=False),
            gates=HealthGates.model_validate(data.get("gates", {}), strict=False),
            rois={str(c): (r[0], r[1], r[2], r[3]) for c, r in data.get("rois", {}).items()},
            novelty=ModelSpec.from_dict(data["novelty"]) if data.get("novelty") else None,
        )


@dataclass(frozen=True)
class Target:
    """The whole desired state of one device at one generation."""

    site: str
    device: str
    generation: int
    commit: str
    content_hash: str
    lines: dict[str, LineTarget]
    heartbeat_seconds: int = 60

    def models(self) -> dict[str, ModelSpec]:
        """Every model any line needs, by sha256."""
        return {m.sha256: m for line in self.lines.values() for m in line.models()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "device": self.device,
            "generation": self.generation,
            "commit": self.commit,
            "content_hash": self.content_hash,
            "lines": {k: v.to_dict() for k, v in sorted(self.lines.items())},
            "heartbeat_seconds": self.heartbeat_seconds,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Target:
        return cls(
            site=str(data["site"]),
            device=str(data["device"]),
            generation=int(data["generation"]),
            commit=str(data["commit"]),
            content_hash=str(data["content_hash"]),
            lines={str(k): LineTarget.from_dict(v) for k, v in data["lines"].items()},
            heartbeat_seconds=int(data.get("heartbeat_seconds", 60)),
        )
