"""Accept a desired-state payload: verify it (signature, schema, generation), translate it.

Verification is `linefleet_core.signing.verify` (the protocol's rules, shared with every
receiver); this module adds the edge's own check (input shapes are usable) and turns the wire
document into a `Target`. A model decides in its own `output_classes` (its taxonomy version),
which may differ from the line's current taxonomy: a `previous` model from before a taxonomy
migration is still a valid rollback target. The smoke test checks K against those classes.
"""

from __future__ import annotations

import json
import time
from typing import Any

from pydantic import ValidationError

from edge_puller.target import CandidateSpec, LineTarget, ModelSpec, Target
from linefleet_core.fleet import HealthGates, TelemetryPolicy
from linefleet_core.signing import Refusal, TrustedKeys, VerifyError, verify, verify_document
from linefleet_core.wire import Applied, DesiredState, LineSpec, Removal
from linefleet_core.wire import ModelSpec as WireModel


def accept(
    payload: bytes, keys: TrustedKeys, device: str, held: Applied | None
) -> tuple[dict[str, Any], Target]:
    """The document as received and its `Target`, or `VerifyError` with a `Refusal` reason
    (including `expired`: past its signed `expires_at` by this device's clock)."""
    doc = verify(payload, keys, device=device, held=held, now=time.time())
    target = to_target(doc)
    raw: dict[str, Any] = json.loads(payload)
    return raw, target


def removal_of(
    payload: bytes, keys: TrustedKeys, device: str, held: Applied | None
) -> Removal | None:
    """The verified removal tombstone in `payload`, None when it holds a desired state (which
    `accept` then verifies), or `VerifyError` for a tombstone that does not verify."""
    if b'"Removed"' not in payload:  # cheap: only a tombstone is checked twice
        return None
    doc = verify_document(payload, keys, device=device, held=held)
    return doc if isinstance(doc, Removal) else None


def to_target(doc: DesiredState) -> Target:
    try:
        lines = {spec.line: _line(spec) for spec in doc.spec.lines}
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise VerifyError(Refusal.MALFORMED, f"{where}: {first['msg']}") from None
    return Target(
        site=doc.site,
        device=doc.device,
        generation=doc.generation,
        commit=doc.commit,
        content_hash=doc.content_hash,
        lines=lines,
        heartbeat_seconds=doc.spec.heartbeat_seconds,
    )


def _model(spec: WireModel, line: LineSpec, role: str) -> ModelSpec:
    where = f"spec.lines[{line.line}].{role}"
    n, a, b, c = spec.input.shape
    layout = spec.input.layout or "NCHW"
    channels, h, w = (a, b, c) if layout == "NCHW" else (c, a, b)
    expected_c = 1 if spec.input.color == "gray" else 3
    if n < 1 or channels != expected_c or h < 1 or w < 1:
        form = "[N, {0}, H, W]" if layout == "NCHW" else "[N, H, W, {0}]"
        raise VerifyError(
            Refusal.MALFORMED,
            f"{where}.input.shape {spec.input.shape} is not {form.format(expected_c)} "
            f"for color {spec.input.color!r}",
        )
    norm = spec.input.normalize
    tiling = spec.input.tiling
    return ModelSpec(
        ref=spec.ref,
        sha256=spec.artifact.sha256,
        size=spec.artifact.size,
        url=spec.artifact.url,
        classes=tuple(spec.output_classes),
        input_shape=(n, a, b, c),
        color=spec.input.color,
        reference_stats=dict(spec.reference_stats),
        task=spec.task or "classification",
        input_name=spec.input.name,
        layout=layout,
        resize=spec.input.resize or "stretch",
        scale=norm.scale if norm else 1 / 255,
        mean=tuple(norm.mean) if norm and norm.mean else None,
        std=tuple(norm.std) if norm and norm.std else None,
        tiling=(tiling.size, tiling.overlap) if tiling else None,
        outputs=spec.outputs.model_dump(exclude_none=True) if spec.outputs else {},
    )


def _line(spec: LineSpec) -> LineTarget:
    candidate = None
    if spec.candidate is not None:
        candidate = CandidateSpec(
            model=_model(spec.candidate, spec, "candidate"),
            stage=spec.candidate.stage,
            canary_fraction=spec.candidate.canary_fraction or 0.0,
        )
    telemetry = spec.telemetry.model_dump()
    return LineTarget(
        key=spec.line,
        cameras=tuple(c.id for c in spec.cameras),
        serving=_model(spec.serving, spec, "serving"),
        candidate=candidate,
        previous=_model(spec.previous, spec, "previous") if spec.previous else None,
        telemetry=TelemetryPolicy.model_validate(telemetry, strict=False),
        gates=HealthGates.model_validate(spec.health_gates.model_dump(), strict=False),
        rois={c.id: (c.roi[0], c.roi[1], c.roi[2], c.roi[3]) for c in spec.cameras if c.roi},
        novelty=_novelty(spec),
    )


def _novelty(spec: LineSpec) -> ModelSpec | None:
    if spec.novelty is None:
        return None
    if spec.novelty.task != "anomaly":
        raise VerifyError(
            Refusal.MALFORMED,
            f"spec.lines[{spec.line}].novelty: task {spec.novelty.task or 'classification'!r}, "
            "a novelty model is an anomaly model",
        )
    return _model(spec.novelty, spec, "novelty")
