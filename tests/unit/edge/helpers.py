"""Small builders shared by the edge tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_puller.target import Target
from linefleet_core.wire import CandidateSpec, DesiredState, ModelSpec
from tests.support.onnx_models import CLASSES, write_model
from tests.support.wiredocs import desired_envelope
from tests.support.wiremodels import candidate as candidate_of
from tests.support.wiremodels import model_spec
from tests.unit.edge.documents import line_doc


def spec_for(folder: Path, name: str, version: int, **kwargs: Any) -> ModelSpec:
    built = write_model(folder / f"{name}-{version}.onnx", **kwargs)
    return model_spec(
        f"{name}@{version}",
        built.sha256,
        built.size,
        built.path.as_uri(),
        CLASSES,
        (1, 3, 32, 32),
        reference_stats={"brightness": 0.5, "contrast": 0.1},
    )


def target(
    serving: ModelSpec,
    candidate: CandidateSpec | None = None,
    previous: ModelSpec | None = None,
    generation: int = 1,
    line: str = "plant/line-1",
) -> Target:
    """A one-line desired state for `plant/dev-1` (one camera, the fleet's default telemetry and
    gates), held as the device holds it."""
    stage, fraction = (candidate.stage, candidate.canary_fraction) if candidate else ("", None)
    doc = line_doc(
        serving, candidate=candidate, stage=stage, fraction=fraction, previous=previous, line=line
    )
    spec = {"heartbeat_seconds": 60, "lines": [doc]}
    return Target(DesiredState.model_validate(desired_envelope("plant", "dev-1", generation, spec)))


__all__ = ["candidate_of", "model_spec", "spec_for", "target"]
