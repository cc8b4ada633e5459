"""The model catalogue: every model version that may run on a line, with its evidence."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from linefleet_core import artifactref
from linefleet_core.model import Header, Strict
from linefleet_core.refs import Id, VersionedRef

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class Artifact(Strict):
    url: str = Field(min_length=1, max_length=2048)
    """A path inside the repository (`fleet/artifacts/m.onnx`, or `file://fleet/...`), or a
    URL with a scheme of `artifactref.REMOTE_SCHEMES`; `validate` checks the file is there."""
    sha256: Sha256
    size: int = Field(gt=0)

    @field_validator("url")
    @classmethod
    def _usable(cls, value: str) -> str:
        artifactref.parse(value)
        return value


class InputSpec(Strict):
    shape: list[int] = Field(min_length=4, max_length=4)
    """NCHW: [1, channels, height, width] (a batch of one frame)."""
    color: Literal["rgb", "bgr", "gray"] = "rgb"


class LineEvidence(Strict):
    """The candidate and the line's incumbent scored on the same holdout of that line."""

    metric: Literal["accuracy", "macro_f1", "defect_recall"]
    candidate: float = Field(ge=0, le=1)
    incumbent: float | None = Field(default=None, ge=0, le=1)
    incumbent_model: VersionedRef | None = None
    holdout_frames: int = Field(ge=1)
    dataset: str = Field(min_length=1)


class ModelVersion(Strict):
    version: int = Field(ge=1)
    taxonomy: VersionedRef
    output_classes: list[Id] = Field(min_length=2)
    """In output order; must equal the taxonomy version's classes."""
    artifact: Artifact
    input: InputSpec
    opset: int = Field(ge=7, le=30)
    execution_providers: list[str] = Field(default_factory=lambda: ["CPUExecutionProvider"])
    reference_stats: dict[str, float] = Field(default_factory=dict)
    """Input statistics of the training frames (brightness, contrast, ...) for edge drift scores."""
    mlflow_run_id: str | None = None
    dataset: str | None = None
    evaluation: dict[str, LineEvidence] = Field(default_factory=dict)
    """Per-line evidence keyed by `site/line`."""


class ModelFamily(Header):
    kind: Literal["Model"]
    name: Id
    description: str = ""
    versions: list[ModelVersion] = Field(min_length=1)
