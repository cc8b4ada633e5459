"""Desired-state parts for tests and benchmarks, built as the wire types the edge carries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from linefleet_core.fleet import HealthGates, TelemetryPolicy
from linefleet_core.refs import CandidateStage, ColorOrder, ModelTask
from linefleet_core.wire import (
    ArtifactRef,
    CandidateSpec,
    HealthGatesSpec,
    ModelInput,
    ModelOutputs,
    ModelSpec,
    Normalization,
    TelemetrySpec,
    TilingSpec,
)


def model_spec(
    ref: str,
    sha256: str,
    size: int,
    url: str,
    classes: Sequence[str],
    input_shape: Sequence[int],
    *,
    color: ColorOrder = "rgb",
    reference_stats: dict[str, float] | None = None,
    task: ModelTask | None = None,
    layout: Literal["NCHW", "NHWC"] | None = None,
    scale: float | None = None,
    tiling: tuple[int, int] | None = None,
    input_name: str | None = None,
    outputs: dict[str, Any] | None = None,
    opset: int = 13,
) -> ModelSpec:
    """One model as a desired state names it (contract v1 unless a v2 field is given)."""
    return ModelSpec(
        ref=ref,
        artifact=ArtifactRef(url=url, sha256=sha256, size=size),
        input=ModelInput(
            shape=list(input_shape),
            color=color,
            name=input_name,
            layout=layout,
            normalize=None if scale is None else Normalization(scale=scale),
            tiling=None if tiling is None else TilingSpec(size=tiling[0], overlap=tiling[1]),
        ),
        output_classes=list(classes),
        opset=opset,
        reference_stats=dict(reference_stats or {}),
        task=task,
        outputs=None if outputs is None else ModelOutputs.model_validate(outputs),
    )


def candidate(
    model: ModelSpec, stage: CandidateStage, canary_fraction: float | None = None
) -> CandidateSpec:
    """`model` as a line's candidate at `stage`."""
    return CandidateSpec(**dict(model), stage=stage, canary_fraction=canary_fraction)


def telemetry(**overrides: Any) -> TelemetrySpec:
    """A line's telemetry: the fleet's defaults, with `overrides`."""
    return TelemetrySpec.model_validate(
        TelemetryPolicy.model_validate(overrides).model_dump(exclude_none=True)
    )


def gates(**overrides: Any) -> HealthGatesSpec:
    """A line's health gates: the fleet's defaults, with `overrides`."""
    chosen = HealthGates.model_validate(overrides).model_dump(exclude={"max_field_escape_rate"})
    return HealthGatesSpec.model_validate(chosen)
