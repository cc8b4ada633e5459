"""Line profiles for the lines of a fleet repository: one frame stream per declared camera.

What the fleet declares sets the nuisance; the seed fills in the rest:

- `Camera.lighting`: colour temperature exactly; intensity from the lux level; the lighting
  profile's name sets the illumination gradient (`diffuse-dome`, `coaxial` and `bright-field`
  are even; `low-angle-ring` and `dark-field` are not);
- `Camera.mount.angle_deg`: the keystone (tilt) strength and sign;
- `Camera.conveyor_side`: the product's orientation in the frame (quarter turns); lines at
  sites whose conveyors run the other way (Dresden) are mirrored;
- the line's id and product: the material (`paint-*` lines see painted panels; stamping,
  press, body and machining lines see bare metal; bumpers and trims are plastic). All
  cameras of a line see the same product, so they share one supplier.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from factory_sim.profiles import (
    REVERSED_SITES,
    Lighting,
    LineProfile,
    Material,
    draw_conveyor,
    draw_optics,
    draw_supplier,
    stable_key,
)
from linefleet_core.fleet import Camera, Line

_SIDE_TURNS = {"top": 0, "right": 1, "bottom": 2, "left": 3}
_EVEN_LIGHT = ("dome", "diffuse", "coaxial", "bright-field")
_PLASTIC = ("bumper", "trim", "plastic", "housing", "cover")
_METAL = ("stamping", "press", "body", "machining", "weld", "hem")


def material_of(line: Line) -> Material | None:
    """The material a line's cameras see, from its id and product; None: draw one."""
    words = f"{line.id} {line.product}".lower()
    if any(w in words for w in _PLASTIC):
        return "plastic"
    if "paint" in words:
        return "painted_panel"
    if any(w in words for w in _METAL):
        return "brushed_metal"
    return None


def _lighting(camera: Camera, rng: np.random.Generator) -> Lighting:
    name = camera.lighting.profile
    even = any(w in name for w in _EVEN_LIGHT)
    falloff = rng.uniform(0.0, 0.05) if even else rng.uniform(0.12, 0.25)
    intensity = math.sqrt(camera.lighting.intensity_lux / 1000.0)
    if "dark-field" in name:
        intensity *= 0.8
    return Lighting(
        colour_temp_k=float(camera.lighting.color_temperature_k),
        intensity=round(float(np.clip(intensity, 0.6, 1.35)), 3),
        falloff=round(float(falloff), 3),
        falloff_angle_deg=round(float(rng.uniform(0, 360)), 1),
    )


def camera_profile(line: Line, camera: Camera, seed: int) -> LineProfile:
    """The profile of one camera stream of a fleet line."""
    line_rng = np.random.default_rng(
        np.random.SeedSequence(seed, spawn_key=(stable_key(line.key),))
    )
    supplier = draw_supplier(line_rng, material_of(line))
    keys = (stable_key(line.key), stable_key(camera.id))
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=keys))
    optics = draw_optics(rng, mirrored=line.site in REVERSED_SITES)
    tilt = float(np.clip(math.sin(math.radians(camera.mount.angle_deg)) * 0.35, -0.3, 0.3))
    optics = dataclasses.replace(
        optics,
        tilt=round(tilt, 3),
        tilt_axis=1 if camera.conveyor_side in ("left", "right") else 0,
        quarter_turns=_SIDE_TURNS[camera.conveyor_side],
    )
    return LineProfile(
        site=line.site,
        line=line.id,
        camera=camera.id,
        supplier=supplier,
        lighting=_lighting(camera, rng),
        optics=optics,
        conveyor=draw_conveyor(rng),
    )


def fleet_profiles(lines: Sequence[Line], seed: int) -> list[LineProfile]:
    """One profile per camera of each line, in the order given (cameras in declared order)."""
    return [camera_profile(line, camera, seed) for line in lines for camera in line.cameras]


def select_lines(available: dict[str, Line], keys: Sequence[str]) -> list[Line]:
    """The lines named by `site/line` keys (all lines, sorted, when `keys` is empty)."""
    if not keys:
        return [available[k] for k in sorted(available)]
    unknown = [k for k in keys if k not in available]
    if unknown:
        raise ValueError(
            f"unknown line(s): {', '.join(unknown)} (the fleet has: {', '.join(sorted(available))})"
        )
    return [available[k] for k in dict.fromkeys(keys)]


def common_taxonomy(lines: Sequence[Line]) -> tuple[str, str | None]:
    """The taxonomy ref to label a dataset of these lines with, and a note if they disagree.

    Lines on different versions of one taxonomy get the newest (labels migrate forward);
    lines on different taxonomies cannot share a dataset.
    """
    refs = sorted({line.taxonomy for line in lines}, key=lambda r: int(r.partition("@")[2]))
    names = {r.partition("@")[0] for r in refs}
    if len(names) > 1:
        raise ValueError(
            f"the selected lines use different taxonomies ({', '.join(refs)}); "
            "select lines of one taxonomy with --line, or give --taxonomy"
        )
    if len(refs) == 1:
        return refs[0], None
    return refs[-1], f"the selected lines use {', '.join(refs)}; labelling with {refs[-1]}"
