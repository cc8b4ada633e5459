"""Line profiles: everything about a line's frames that is not the defect (the nuisance).

A `LineProfile` is drawn once per line from the seed and the line's key, so adding a site
does not change the frames of existing lines. It groups what differs between real lines:

- `Supplier`: the material and its texture (brushed metal, painted panel, moulded plastic),
  base colour, grain direction, scale and strength;
- `Lighting`: colour temperature (a white-balance shift), intensity and an illumination
  gradient across the field of view;
- `Optics`: camera tilt (a keystone perspective warp), product orientation on the conveyor
  (quarter turns and a mirror: Dresden runs the opposite direction), how much of the frame
  the product covers, defocus and motion blur, lens vignetting and sensor noise;
- `Conveyor`: the belt visible at the frame borders (colour, stripe period and contrast).

`DriftEvent`s change a line's profile from a frame on (see `factory_sim.drift`): a new
material supplier, a bumped camera, a lighting change.
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from linefleet_core.refs import line_key

Material = Literal["brushed_metal", "painted_panel", "plastic"]
MATERIALS: tuple[Material, ...] = get_args(Material)

DriftKind = Literal["supplier_texture", "camera_bump", "lighting_change"]
DRIFT_KINDS: tuple[DriftKind, ...] = get_args(DriftKind)

SITE_NAMES = ("toledo", "dresden", "monterrey", "pune", "suzhou", "porto", "brno", "osaka")
REVERSED_SITES = frozenset({"dresden"})
"""Sites whose conveyors run the opposite direction: their products are seen mirrored."""


@dataclass(frozen=True)
class Supplier:
    material: Material
    base_bgr: tuple[float, float, float]
    grain_angle_deg: float
    grain_scale: float
    """Correlation length of the texture, as a fraction of the product size."""
    grain_strength: float


@dataclass(frozen=True)
class Lighting:
    colour_temp_k: float
    intensity: float
    falloff: float
    """Illumination gradient: brightness changes by +-falloff across the frame."""
    falloff_angle_deg: float


@dataclass(frozen=True)
class Optics:
    tilt: float
    """Keystone strength in [-0.3, 0.3]: the far edge of the product looks narrower."""
    tilt_axis: int
    """0: the camera leans along the conveyor (vertical keystone); 1: across it."""
    quarter_turns: int
    mirrored: bool
    coverage: float
    """Fraction of the frame width the product covers; the rest shows the conveyor."""
    blur_sigma: float
    """Gaussian blur in pixels at 128 px (scaled with the frame size)."""
    noise_sigma: float
    """Sensor noise standard deviation, in [0, 1] intensity units."""
    motion_px: float
    """Motion blur along the direction of travel, in pixels at 128 px (conveyor speed)."""
    vignetting: float
    """Lens fall-off: the corners are darker by this fraction."""


@dataclass(frozen=True)
class Conveyor:
    belt_bgr: tuple[float, float, float]
    stripe_period: float
    """Stripe period as a fraction of the frame size."""
    stripe_contrast: float


@dataclass(frozen=True)
class LineProfile:
    site: str
    line: str
    camera: str
    supplier: Supplier
    lighting: Lighting
    optics: Optics
    conveyor: Conveyor

    @property
    def key(self) -> str:
        return line_key(self.site, self.line)

    def nuisance(self) -> dict[str, object]:
        """The nuisance parameters as plain JSON data (for the manifest): lists, no tuples."""
        doc = {
            "supplier": dataclasses.asdict(self.supplier),
            "lighting": dataclasses.asdict(self.lighting),
            "optics": dataclasses.asdict(self.optics),
            "conveyor": dataclasses.asdict(self.conveyor),
        }
        plain: dict[str, object] = json.loads(json.dumps(doc))
        return plain


@dataclass(frozen=True)
class DriftEvent:
    """From frame `at_frame` of line `line` (a `site/line` key) on, the nuisance changes.

    With `ramp` > 1 the change blends in over that many frames (a lamp ageing, a mixed batch
    of material) instead of all at once (a camera knocked out of place).
    """

    kind: DriftKind
    line: str
    at_frame: int
    ramp: int = 0

    def __post_init__(self) -> None:
        if self.kind not in DRIFT_KINDS:
            raise ValueError(f"unknown drift kind {self.kind!r}; one of: {', '.join(DRIFT_KINDS)}")
        if self.at_frame < 0:
            raise ValueError(f"at_frame must be >= 0, got {self.at_frame}")
        if self.ramp < 0:
            raise ValueError(f"ramp must be >= 0, got {self.ramp}")

    @classmethod
    def parse(cls, text: str) -> DriftEvent:
        """`KIND:SITE/LINE:FRAME[:RAMP]`, for example `camera_bump:toledo/line-2:300`."""
        parts = text.split(":")
        if len(parts) not in (3, 4):
            raise ValueError(f"{text!r}: expected KIND:SITE/LINE:FRAME[:RAMP]")
        kind, line, frame = parts[:3]
        if kind not in DRIFT_KINDS:
            raise ValueError(f"{text!r}: unknown drift kind; one of: {', '.join(DRIFT_KINDS)}")
        if not frame.isdigit():
            raise ValueError(f"{text!r}: FRAME must be a non-negative integer")
        if len(parts) == 4 and not parts[3].isdigit():
            raise ValueError(f"{text!r}: RAMP must be a non-negative number of frames")
        return cls(kind, line, int(frame), int(parts[3]) if len(parts) == 4 else 0)

    @property
    def key(self) -> str:
        """What the change itself is drawn from (the ramp only changes how it blends in)."""
        return f"{self.kind}:{self.line}:{self.at_frame}"

    def __str__(self) -> str:
        return f"{self.key}:{self.ramp}" if self.ramp > 1 else self.key


def stable_key(text: str) -> int:
    """A stable 32-bit number for a name (Python's hash() is salted per process)."""
    return zlib.crc32(text.encode("utf-8"))


def seeded_rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=keys))


def site_names(count: int) -> list[str]:
    return [SITE_NAMES[i] if i < len(SITE_NAMES) else f"site-{i + 1}" for i in range(count)]


def _colour(rng: np.random.Generator, lo: float, hi: float) -> tuple[float, float, float]:
    return tuple(round(float(v), 4) for v in rng.uniform(lo, hi, 3))  # type: ignore[return-value]


def _tinted_grey(
    rng: np.random.Generator, lo: float, hi: float, tint: float
) -> tuple[float, float, float]:
    grey = float(rng.uniform(lo, hi))
    return tuple(round(grey + float(t), 4) for t in rng.uniform(-tint, tint, 3))  # type: ignore[return-value]


def draw_supplier(rng: np.random.Generator, material: Material | None = None) -> Supplier:
    chosen: Material = material or MATERIALS[int(rng.integers(len(MATERIALS)))]
    if chosen == "brushed_metal":
        base = _tinted_grey(rng, 0.5, 0.72, 0.04)
        scale, strength = rng.uniform(0.2, 0.5), rng.uniform(0.035, 0.07)
    elif chosen == "painted_panel":
        base = _colour(rng, 0.25, 0.75)
        scale, strength = rng.uniform(0.02, 0.05), rng.uniform(0.02, 0.04)
    else:
        base = _colour(rng, 0.3, 0.8)
        scale, strength = rng.uniform(0.008, 0.02), rng.uniform(0.025, 0.05)
    return Supplier(
        material=chosen,
        base_bgr=base,
        grain_angle_deg=round(float(rng.uniform(0, 180)), 2),
        grain_scale=round(float(scale), 4),
        grain_strength=round(float(strength), 4),
    )


def draw_lighting(rng: np.random.Generator) -> Lighting:
    return Lighting(
        colour_temp_k=round(float(rng.uniform(3000, 7500)), 0),
        intensity=round(float(rng.uniform(0.7, 1.25)), 3),
        falloff=round(float(rng.uniform(0.0, 0.2)), 3),
        falloff_angle_deg=round(float(rng.uniform(0, 360)), 1),
    )


def draw_optics(rng: np.random.Generator, *, mirrored: bool) -> Optics:
    return Optics(
        tilt=round(float(rng.uniform(-0.25, 0.25)), 3),
        tilt_axis=int(rng.integers(2)),
        quarter_turns=int(rng.integers(4)),
        mirrored=mirrored,
        coverage=round(float(rng.uniform(0.72, 0.9)), 3),
        blur_sigma=round(float(rng.uniform(0.0, 1.0)), 3),
        noise_sigma=round(float(rng.uniform(0.004, 0.03)), 4),
        motion_px=round(float(rng.uniform(0.0, 2.5)), 2),
        vignetting=round(float(rng.uniform(0.0, 0.3)), 3),
    )


def draw_conveyor(rng: np.random.Generator) -> Conveyor:
    return Conveyor(
        belt_bgr=_tinted_grey(rng, 0.1, 0.35, 0.04),
        stripe_period=round(float(rng.uniform(0.04, 0.12)), 4),
        stripe_contrast=round(float(rng.uniform(0.02, 0.1)), 4),
    )


def draw_profile(site: str, line: str, seed: int, camera: str = "cam-1") -> LineProfile:
    rng = seeded_rng(seed, stable_key(line_key(site, line)))
    return LineProfile(
        site=site,
        line=line,
        camera=camera,
        supplier=draw_supplier(rng),
        lighting=draw_lighting(rng),
        optics=draw_optics(rng, mirrored=site in REVERSED_SITES or bool(rng.random() < 0.2)),
        conveyor=draw_conveyor(rng),
    )


def line_profiles(sites: int | Sequence[str], lines_per_site: int, seed: int) -> list[LineProfile]:
    """One profile per line: `line-1..line-M` at each site, in site then line order."""
    if lines_per_site < 1:
        raise ValueError(f"lines_per_site must be >= 1, got {lines_per_site}")
    names = site_names(sites) if isinstance(sites, int) else list(sites)
    if not names:
        raise ValueError("at least one site is needed")
    return [draw_profile(s, f"line-{i + 1}", seed) for s in names for i in range(lines_per_site)]
