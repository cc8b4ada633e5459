"""Drift over time: what each `DriftEvent` changes, and the profile in effect at a frame.

The change an event makes is drawn from the seed and the event (`DriftEvent.key`), so it is
reproducible: `supplier_texture` keeps the material but changes its shade, grain direction,
scale and strength; `camera_bump` changes the tilt and framing and defocuses the camera;
`lighting_change` shifts the colour temperature by 1,500-2,500 K and the intensity by 30%.
An event with a ramp blends in linearly over that many frames.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np

from factory_sim.profiles import DriftEvent, LineProfile, seeded_rng, stable_key

T = TypeVar("T")


def drifted(profile: LineProfile, event: DriftEvent, seed: int) -> LineProfile:
    """The profile after `event` (drawn from the seed and the event: reproducible)."""
    rng = seeded_rng(seed, stable_key(event.key))
    if event.kind == "supplier_texture":
        # same material, another supplier: a coarser or finer, stronger grain, another shade
        old_sup = profile.supplier
        shade = np.asarray(old_sup.base_bgr) + rng.choice([-1.0, 1.0]) * rng.uniform(0.06, 0.12)
        shade += rng.uniform(-0.04, 0.04, 3)
        b, g, r = (float(v) for v in np.clip(shade, 0.15, 0.9))
        supplier = dataclasses.replace(
            old_sup,
            base_bgr=(round(b, 4), round(g, 4), round(r, 4)),
            grain_angle_deg=round((old_sup.grain_angle_deg + float(rng.uniform(20, 70))) % 180, 2),
            grain_scale=round(old_sup.grain_scale * float(rng.choice([0.5, 2.0])), 4),
            grain_strength=round(old_sup.grain_strength * float(rng.uniform(1.8, 2.5)), 4),
        )
        return dataclasses.replace(profile, supplier=supplier)
    if event.kind == "camera_bump":
        old = profile.optics
        tilt = old.tilt + float(rng.choice([-1.0, 1.0]) * rng.uniform(0.12, 0.2))
        optics = dataclasses.replace(
            old,
            tilt=round(float(np.clip(tilt, -0.35, 0.35)), 3),
            coverage=round(float(np.clip(old.coverage + rng.uniform(-0.1, 0.1), 0.6, 0.95)), 3),
            blur_sigma=round(old.blur_sigma + float(rng.uniform(0.6, 1.2)), 3),
        )
        return dataclasses.replace(profile, optics=optics)
    old_light = profile.lighting
    shift = float(rng.choice([-1.0, 1.0]) * rng.uniform(1500, 2500))
    lighting = dataclasses.replace(
        old_light,
        colour_temp_k=round(float(np.clip(old_light.colour_temp_k + shift, 2500, 9000)), 0),
        intensity=round(old_light.intensity * float(rng.choice([0.7, 1.3])), 3),
    )
    return dataclasses.replace(profile, lighting=lighting)


def _mix(old: Any, new: Any, t: float) -> Any:
    if isinstance(old, bool | int | str):
        return old if t < 0.5 else new
    if isinstance(old, float):
        return round(old + (new - old) * t, 4)
    if isinstance(old, tuple):
        return tuple(_mix(a, b, t) for a, b in zip(old, new, strict=True))
    if dataclasses.is_dataclass(old):
        return blend(old, new, t)
    return old if t < 0.5 else new  # pragma: no cover - every field type is handled above


def blend(old: T, new: T, t: float) -> T:
    """`old` moved a fraction `t` towards `new`, field by field (numbers interpolate)."""
    if t <= 0:
        return old
    if t >= 1:
        return new
    changes = {
        f.name: _mix(getattr(old, f.name), getattr(new, f.name), t)
        for f in dataclasses.fields(old)  # type: ignore[arg-type]
    }
    return dataclasses.replace(old, **changes)  # type: ignore[type-var]


def profile_at(
    profile: LineProfile, events: Sequence[DriftEvent], frame: int, seed: int
) -> tuple[LineProfile, list[DriftEvent]]:
    """The profile in effect at `frame` and the events active by then (in frame order)."""
    active = sorted(
        (e for e in events if e.line == profile.key and e.at_frame <= frame),
        key=lambda e: (e.at_frame, e.kind),
    )
    for event in active:
        target = drifted(profile, event, seed)
        progress = 1.0 if event.ramp <= 1 else (frame - event.at_frame + 1) / event.ramp
        profile = blend(profile, target, progress)
    return profile, active
