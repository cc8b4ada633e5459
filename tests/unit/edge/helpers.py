"""Small builders shared by the edge tests."""

from __future__ import annotations

from pathlib import Path

from edge_puller.target import CandidateSpec, LineTarget, ModelSpec, Target
from tests.support.onnx_models import CLASSES, write_model


def spec_for(folder: Path, name: str, version: int, **kwargs: object) -> ModelSpec:
    built = write_model(folder / f"{name}-{version}.onnx", **kwargs)
    return ModelSpec(
        ref=f"{name}@{version}",
        sha256=built.sha256,
        size=built.size,
        url=built.path.as_uri(),
        classes=CLASSES,
        input_shape=(1, 3, 32, 32),
        color="rgb",
        reference_stats={"brightness": 0.5, "contrast": 0.1},
    )


def target(
    serving: ModelSpec,
    candidate: CandidateSpec | None = None,
    previous: ModelSpec | None = None,
    generation: int = 1,
    line: str = "plant/line-1",
) -> Target:
    return Target(
        site="plant",
        device="dev-1",
        generation=generation,
        commit="0" * 40,
        content_hash=f"{generation:064x}",
        lines={
            line: LineTarget(
                key=line,
                cameras=("cam-1",),
                serving=serving,
                candidate=candidate,
                previous=previous,
            )
        },
    )
