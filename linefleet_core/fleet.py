"""The fleet: sites, lines with their cameras and rollout, edge devices, and the fleet policy."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from typing import Annotated, Literal, Self

from pydantic import (
    BeforeValidator,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from linefleet_core.model import Header, Strict
from linefleet_core.oci import HOST_PATTERN
from linefleet_core.refs import CandidateStage, Id, VersionedRef

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ClockTime = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
LaxDateTime = Annotated[dt.datetime, Field(strict=False)]
RegistryHost = Annotated[str, StringConstraints(pattern=HOST_PATTERN)]
"""An OCI registry's `HOST[:PORT]`, as in `oci://HOST[:PORT]/REPO@sha256:…`."""
"""ISO 8601 (`2026-12-20` or `2026-12-20T06:00`); naive times are in the site's timezone."""


CODE_OWNER_PATTERN = r"^(@[A-Za-z0-9][A-Za-z0-9-]*(/[A-Za-z0-9_.-]+)?|[^@\s]+@[^@\s]+)$"
_CODE_OWNER = re.compile(CODE_OWNER_PATTERN)


def _code_owner(value: object) -> object:
    """Say what a CODEOWNERS owner looks like (before the pattern's generic message would)."""
    if isinstance(value, str) and not _CODE_OWNER.match(value):
        hint = f"; did you mean '@{value}'?" if _CODE_OWNER.match(f"@{value}") else ""
        raise ValueError(
            f"{value!r} is not a CODEOWNERS owner (@user, @org/team or an e-mail){hint}"
        )
    return value


CodeOwner = Annotated[
    str, StringConstraints(pattern=CODE_OWNER_PATTERN), BeforeValidator(_code_owner)
]
"""A CODEOWNERS owner: `@user`, `@org/team` or an e-mail address."""


class ProductionWindow(Strict):
    """When the line runs (local time). Changes may be held back from these windows by policy."""

    days: list[Weekday] = Field(min_length=1)
    start: ClockTime
    end: ClockTime
    """May be earlier than start: the window then runs past midnight."""


class FreezePeriod(Strict):
    """No rollout change may land on the site's lines in [start, end) (rollbacks excepted)."""

    start: LaxDateTime
    end: LaxDateTime
    reason: str = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if (self.start.tzinfo is None) != (self.end.tzinfo is None):
            raise ValueError(
                "start and end must both carry a UTC offset or both be the site's local time"
            )
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class Site(Header):
    kind: Literal["Site"]
    id: Id
    name: str = Field(min_length=1)
    timezone: str
    approvers: list[CodeOwner] = Field(default_factory=list)
    """Who must approve changes to this site's fleet files (CODEOWNERS entries)."""
    production_windows: list[ProductionWindow] = Field(default_factory=list)
    freeze_periods: list[FreezePeriod] = Field(default_factory=list)
    artifact_mirror: RegistryHost | None = None
    """`HOST[:PORT]` of the site's OCI registry mirror (a pull-through cache of the central
    registry, `linefleet mirror config`): the site's devices fetch `oci://` models from it."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown IANA timezone {value!r} (for example 'Europe/Berlin')"
            ) from None
        return value


class Resolution(Strict):
    width: int = Field(ge=16, le=16384)
    height: int = Field(ge=16, le=16384)


class Lighting(Strict):
    profile: Id
    color_temperature_k: int = Field(ge=1000, le=20000)
    intensity_lux: float = Field(gt=0)


class Mount(Strict):
    angle_deg: float = Field(ge=-90, le=90)
    height_mm: float = Field(gt=0)


class Roi(Strict):
    """The part of the camera's frame the models see (pixels, origin top left)."""

    x: int = Field(ge=0)
    y: int = Field(ge=0)
    width: int = Field(ge=1)
    height: int = Field(ge=1)


class Camera(Strict):
    id: Id
    resolution: Resolution
    lighting: Lighting
    mount: Mount
    conveyor_side: Literal["left", "right", "top", "bottom"]
    fps: float = Field(default=10.0, gt=0, le=1000)
    roi: Roi | None = None
    """Region of interest: the models of the line see only this part of the frame."""

    @model_validator(mode="after")
    def _roi_inside(self) -> Self:
        roi, res = self.roi, self.resolution
        if roi is not None and (roi.x + roi.width > res.width or roi.y + roi.height > res.height):
            raise ValueError(
                f"roi {roi.width}x{roi.height}+{roi.x}+{roi.y} leaves the "
                f"{res.width}x{res.height} frame"
            )
        return self


class TelemetryPolicy(Strict):
    """What leaves the edge (docs/edge.md, "Anomaly-native logging"): defect, novel, uncertain,
    disagreeing and audit-sampled frames, within a spool and a daily upload budget."""

    uncertainty_band: list[Probability] = Field(default=[0.35, 0.65], min_length=2, max_length=2)
    """Kept for documents written before `uncertain_below`: only its upper edge counts (a top
    confidence at or below it is uncertain); the lower edge no longer drops anything."""
    uncertain_below: Probability | None = None
    """Top-class confidence at or below this is uncertain and kept (default: the band's upper
    edge). No lower edge: the least confident frames are the most uncertain."""
    daily_upload_budget_mb: float = Field(default=50.0, gt=0)
    spool_mb: float = Field(default=500.0, gt=0)
    keep_defects: bool = True
    keep_disagreements: bool = True
    audit_rate: Probability | None = None
    """Share of confidently-`ok` frames kept as `audit` (stratified per camera): labelled, they
    estimate the line's escape rate. Unset or 0: no audit sample."""
    novelty_threshold: float | None = Field(default=None, gt=0)
    """With no novelty model on the line: a frame whose input statistics lie this many standard
    deviations from its camera's running normal is kept as `novel` (default 4)."""
    doubt_defects_below: Probability | None = None
    """With a novelty model on the line: a `defect` call on a frame whose novelty score is below
    this share of the model's threshold (the frame looks as normal as most `ok` frames) is
    doubted, not kept as `defect`; another rule may still keep it, and the spool counts it as
    `doubted`. Unset (the default): every `defect` call is kept."""

    @model_validator(mode="after")
    def _band(self) -> Self:
        low, high = self.uncertainty_band
        if low > high:
            raise ValueError("uncertainty_band must be [low, high] with low <= high")
        return self

    @property
    def uncertain_at(self) -> float:
        """The top confidence at or below which a frame is uncertain."""
        return self.uncertainty_band[1] if self.uncertain_below is None else self.uncertain_below


class NoveltyRef(Strict):
    """The line's novelty model: a catalogue model of task `anomaly` (higher score = less
    normal, its `threshold` decides `novel`), run on every decided frame beside the classifier."""

    model: Id
    version: int = Field(ge=1, le=999999)

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"


class Candidate(Strict):
    model: VersionedRef
    stage: CandidateStage
    canary_fraction: float | None = Field(default=None, gt=0.0, le=0.5)
    """Share of frames the candidate decides in canary (0 < f <= 0.5); not set in shadow."""

    @model_validator(mode="after")
    def _fraction(self) -> Self:
        if self.stage == "canary" and self.canary_fraction is None:
            raise ValueError("a canary candidate needs canary_fraction (for example 0.1)")
        if self.stage == "shadow" and self.canary_fraction is not None:
            raise ValueError("canary_fraction applies only in stage 'canary'")
        return self


class Rollout(Strict):
    serving: VersionedRef
    """The model that decides on this line (production)."""
    candidate: Candidate | None = None
    previous: VersionedRef | None = None
    """The model the line served before `serving`: the rollback target the edge keeps hot."""
    telemetry: TelemetryPolicy = TelemetryPolicy()
    novelty: NoveltyRef | None = None
    """An input-novelty model for every camera of the line (none: the frame-statistics fallback)."""


class Line(Header):
    kind: Literal["Line"]
    id: Id
    site: Id
    name: str = ""
    product: str = Field(min_length=1)
    taxonomy: VersionedRef
    cameras: list[Camera] = Field(min_length=1)
    rollout: Rollout

    @property
    def key(self) -> str:
        return f"{self.site}/{self.id}"


class Serves(Strict):
    line: Id
    cameras: list[Id] = Field(min_length=1)


class Hardware(Strict):
    cpu: str = Field(min_length=1)
    cores: int = Field(ge=1)
    memory_mb: int = Field(ge=256)
    disk_mb: int = Field(default=16384, ge=256)
    accelerator: str | None = None


class OnnxCapability(Strict):
    max_opset: int = Field(ge=7, le=30)
    execution_providers: list[str] = Field(min_length=1)


class EdgeDevice(Header):
    kind: Literal["EdgeDevice"]
    id: Id
    site: Id
    serves: list[Serves] = Field(min_length=1)
    hardware: Hardware
    onnx: OnnxCapability


class PromotionPolicy(Strict):
    metric: Literal["accuracy", "macro_f1", "defect_recall"] = "accuracy"
    tolerance: float = Field(default=0.01, ge=0, le=0.2)
    """A candidate may be at most this much worse than the incumbent on a line."""
    min_holdout_frames: int = Field(default=50, ge=1)
    """The documented floor: fewer holdout frames on a line is never enough evidence."""
    max_interval_width: Probability = 1.0
    """Sufficiency: the 95% Wilson interval of the escape and false-reject rates on a line's
    holdout must be at most this wide (`linefleet_core.floors`); 1.0 turns the check off."""


class Floor(Strict):
    """Limits a candidate must meet on a line, judged on the 95% confidence bound."""

    max_escape_rate: Probability | None = None
    """Upper bound of the share of defect frames called `ok`."""
    max_false_reject_rate: Probability | None = None
    """Upper bound of the share of `ok` frames called a defect."""
    min_recall: dict[Id, Probability] = Field(default_factory=dict)
    """Lower bound of the recall of each named class."""


class Floors(Floor):
    """Fleet-wide defaults, and per-line limits (keyed `site/line`) that override them."""

    lines: dict[str, Floor] = Field(default_factory=dict)


class HealthGates(Strict):
    """Thresholds past which a canary is rolled back (by the edge at once, then in git)."""

    max_error_rate: Probability = 0.01
    max_latency_p95_ms: float = Field(default=100.0, gt=0)
    min_shadow_agreement: Probability = 0.9
    max_defect_rate_jump: float = Field(default=0.05, ge=0)
    max_drift_score: float = Field(default=0.3, gt=0)
    max_field_escape_rate: Probability | None = None
    """The share of frames the serving model calls `ok` that are defective, estimated from
    labelled audit samples (`trainer/audits.py`); broken when the lower 95% bound is above it.
    Judged by `linefleet status --labels` and the report, never sent to a device. None: off."""


class Owners(Strict):
    """Who must approve changes outside the sites' folders (see `linefleet codeowners`)."""

    fleet_admins: list[CodeOwner] = Field(default_factory=list)
    """Own the policy, the model catalogue and the workflows; also every site without approvers."""
    data_team: list[CodeOwner] = Field(default_factory=list)
    """Own the taxonomies (class definitions and migrations)."""


class Policy(Header):
    kind: Literal["Policy"]
    owners: Owners = Owners()
    promotion: PromotionPolicy = PromotionPolicy()
    max_canary_lines_per_site: int = Field(default=2, ge=1)
    health_gates: HealthGates = HealthGates()
    floors: Floors = Floors()
    heartbeat_seconds: int = Field(default=60, ge=5, le=86400)
    hold_changes_during_production: bool = False
    """When true, rollout changes to a line are refused while a production window is open."""
