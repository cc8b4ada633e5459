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
    URL with a scheme of `artifactref.REMOTE_SCHEMES` (`oci://HOST/REPO@sha256:…`, a registry
    blob from `linefleet artifacts push`; `https://`); `validate` checks the file is there."""
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
    trained_on: list[str] = Field(default_factory=list)
    """The `site/line` keys whose frames trained this version (empty: not recorded)."""
    evaluation: dict[str, LineEvidence] = Field(default_factory=dict)
    """Per-line evidence keyed by `site/line`."""


class ModelFamily(Header):
    kind: Literal["Model"]
    name: Id
    description: str = ""
    versions: list[ModelVersion] = Field(min_length=1)
