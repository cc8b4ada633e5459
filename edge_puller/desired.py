"""Accept a desired-state payload: verify it (signature, schema, generation), check it, hold it.

Verification is `linefleet_core.signing.verified` (the protocol's rules, shared with every
receiver; it parses the payload once and returns the typed document with the JSON object as
received); this module adds the edge's own checks (input shapes are usable, a novelty model is
an anomaly model, gates and telemetry keep the fleet's rules) and wraps the typed document in a
`Target`. A model decides in its own `output_classes` (its taxonomy version), which may differ
from the line's current taxonomy: a `previous` model from before a taxonomy migration is still
a valid rollback target. The smoke test checks K against those classes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from edge_puller.target import Target
from linefleet_core.catalogue import Normalize, Tiling, too_many_tiles
from linefleet_core.fleet import HealthGates, TelemetryPolicy
from linefleet_core.model import Strict
from linefleet_core.signing import Refusal, TrustedKeys, VerifyError, verified
from linefleet_core.wire import (
    MAX_INPUT_SIDE,
    Applied,
    DesiredState,
    LineSpec,
    ModelSpec,
    Removal,
)


@dataclass(frozen=True)
class Accepted:
    """A verified, checked desired state: the JSON object as received and its `Target`."""

    raw: dict[str, Any]
    target: Target


def receive(
    payload: bytes, keys: TrustedKeys, device: str, held: Applied | None
) -> Accepted | Removal:
    """Anything on the `desired` topic, verified once: a desired state (`Accepted`) or a signed
    removal tombstone, else `VerifyError` with a `Refusal` reason (including `expired`: past
    its signed `expires_at` by this device's clock) and the generation the payload claims."""
    checked = verified(payload, keys, device=device, held=held, now=time.time())
    if isinstance(checked.document, Removal):
        return checked.document
    return Accepted(checked.raw, to_target(checked.document))


def accept(
    payload: bytes, keys: TrustedKeys, device: str, held: Applied | None
) -> tuple[dict[str, Any], Target]:
    """A desired state only (a removal is refused as `malformed`): the document as received
    and its `Target`, or `VerifyError`."""
    found = receive(payload, keys, device, held)
    if isinstance(found, Removal):
        raise VerifyError(
            Refusal.MALFORMED,
            "kind: expected a DesiredState, not a removal",
            generation=found.generation,
        )
    return found.raw, found.target


def to_target(doc: DesiredState) -> Target:
    """`doc` as the device holds it, after the edge's own checks (`VerifyError` otherwise)."""
    try:
        for line in doc.spec.lines:
            _check_line(line)
    except VerifyError as exc:
        exc.generation = doc.generation
        raise
    return Target(doc)


def _check_line(spec: LineSpec) -> None:
    """In the order the checks always ran: models by role, telemetry, gates, novelty."""
    where = f"spec.lines[{spec.line}]"
    for role, model in (
        ("candidate", spec.candidate),
        ("serving", spec.serving),
        ("previous", spec.previous),
    ):
        if model is not None:
            _check_model(model, f"{where}.{role}")
    _check_tiles(spec, where)
    try:  # the wire leaves their ranges to the fleet's rules: a device applies them too
        TelemetryPolicy.model_validate(spec.telemetry.model_dump(), strict=False)
        HealthGates.model_validate(spec.health_gates.model_dump(), strict=False)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise VerifyError(Refusal.MALFORMED, f"{loc}: {first['msg']}") from None
    if spec.novelty is not None:
        if spec.novelty.task != "anomaly":
            raise VerifyError(
                Refusal.MALFORMED,
                f"{where}.novelty: task {spec.novelty.task or 'classification'!r}, "
                "a novelty model is an anomaly model",
            )
        _check_model(spec.novelty, f"{where}.novelty")


def _check_model(spec: ModelSpec, where: str) -> None:
    n, a, b, c = spec.input.shape
    layout = spec.input.layout or "NCHW"
    channels, h, w = (a, b, c) if layout == "NCHW" else (c, a, b)
    expected_c = 1 if spec.input.color == "gray" else 3
    sides_ok = 1 <= h <= MAX_INPUT_SIDE and 1 <= w <= MAX_INPUT_SIDE
    # One image a run (tiles are batched only where the graph's batch is dynamic): the smoke
    # test allocates the whole shape, so a batch of 2^40 was a MemoryError in every tick.
    if n != 1 or channels != expected_c or not sides_ok:
        form = "[1, {0}, H, W]" if layout == "NCHW" else "[1, H, W, {0}]"
        raise VerifyError(
            Refusal.MALFORMED,
            f"{where}.input.shape {spec.input.shape} is not {form.format(expected_c)} "
            f"for color {spec.input.color!r}",
        )
    # The catalogue's rules (the wire leaves them to it): one-pixel tiles, millions a frame,
    # or a tile its overlap does not advance through; a std of 0.
    _fleet_rules(spec.input.tiling, Tiling, f"{where}.input.tiling")
    _fleet_rules(spec.input.normalize, Normalize, f"{where}.input.normalize")


def _check_tiles(spec: LineSpec, where: str) -> None:
    """No model may cut a camera's frame (its ROI, else its declared size) into more than
    MAX_TILES_PER_FRAME tiles: a tiling within the catalogue's rules (16-px tiles overlapping
    by 15) made millions of tiles a frame, each decided in turn."""
    roles = [("serving", spec.serving), ("candidate", spec.candidate)]
    roles += [("previous", spec.previous), ("novelty", spec.novelty)]
    for role, model in roles:
        tiling = None if model is None else model.input.tiling
        if tiling is None:
            continue
        for camera in spec.cameras:
            width, height = (camera.width, camera.height) if camera.roi is None else camera.roi[2:]
            many = too_many_tiles(width, height, tiling.size, tiling.overlap)
            if many is not None:
                raise VerifyError(
                    Refusal.MALFORMED, f"{where}.{role}.input.tiling: camera {camera.id}: {many}"
                )


def _fleet_rules(value: BaseModel | None, rules: type[Strict], at: str) -> None:
    if value is None:
        return
    try:
        rules.model_validate(value.model_dump(), strict=False)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = "".join(f".{p}" for p in first["loc"])
        raise VerifyError(Refusal.MALFORMED, f"{at}{loc}: {first['msg']}") from None
