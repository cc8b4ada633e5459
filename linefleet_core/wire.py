"""The MQTT wire protocol between the reconciler and edge devices (see `docs/protocol.md`).

Topics are `linefleet/v1/<site>/<device>/<channel>`; every JSON payload carries
`"protocol": 1`. Receivers ignore unknown fields (adding an optional field is a compatible
change) but refuse an unknown `protocol`. Signing and the canonical JSON form live in
`linefleet_core.signing`; this module only describes the messages.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
import re
import struct
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    ValidationError,
    model_serializer,
)

from linefleet_core import pydanticstart  # noqa: F401  (before the first model is built)
from linefleet_core.refs import ID_PATTERN, CandidateStage, ColorOrder, Id, ModelTask, VersionedRef

PROTOCOL: Literal[1] = 1
TOPIC_ROOT = "linefleet/v1"

MAX_DESIRED_BYTES = 256 * 1024
MAX_REPORTED_BYTES = 64 * 1024
MAX_EVENT_BYTES = 16 * 1024
MAX_ONLINE_BYTES = 1024
MAX_FRAME_BYTES = 4 * 1024 * 1024
MAX_INPUT_SIDE = 8192
"""A model input's height and width at most: its smoke-test tensor alone is 800 MB at 8192 x
8192 x 3 float32 (a vendor graph declaring 2^40 made the device allocate until it died)."""
MAX_SEQ = 2**63 - 1
"""An event `seq` is a signed 64-bit integer: receivers store it as one (SQLite INTEGER)."""

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
CommitSha = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{40}([0-9a-f]{24})?$")]
LineKey = Annotated[str, StringConstraints(pattern=ID_PATTERN[:-1] + "/" + ID_PATTERN[1:])]
Timestamp = Annotated[dt.datetime, Field(strict=False)]
"""RFC 3339 in UTC, for example `2026-11-21T23:55:34.120Z`."""
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


def speaks(value: object) -> bool:
    """True only for the JSON integer 1 (`true` and `1.0` equal 1 in Python: not a version)."""
    return type(value) is int and value == PROTOCOL


def _protocol(value: object) -> object:
    if not speaks(value):
        raise ValueError(f"protocol must be the integer {PROTOCOL}, not {value!r}")
    return value


ProtocolField = Annotated[Literal[1], BeforeValidator(_protocol)]


class Channel(enum.StrEnum):
    DESIRED = "desired"  # reconciler -> device, retained, QoS 1, signed
    REPORTED = "reported"  # device -> reconciler, retained, QoS 1, full snapshot
    EVENTS = "events"  # device -> reconciler, QoS 1, not retained, `seq` per device
    ONLINE = "online"  # device birth (retained) and last will, QoS 1
    FRAMES = "frames"  # device -> centre, QoS 1, not retained, binary envelope


MAX_BYTES: dict[Channel, int] = {
    Channel.DESIRED: MAX_DESIRED_BYTES,
    Channel.REPORTED: MAX_REPORTED_BYTES,
    Channel.EVENTS: MAX_EVENT_BYTES,
    Channel.ONLINE: MAX_ONLINE_BYTES,
    Channel.FRAMES: MAX_FRAME_BYTES,
}


class Topic(NamedTuple):
    site: str
    device: str
    channel: Channel

    def __str__(self) -> str:
        return topic(self.site, self.device, self.channel)


def topic(site: str, device: str, channel: Channel | str) -> str:
    return f"{TOPIC_ROOT}/{site}/{device}/{Channel(channel).value}"


def topic_filter(channel: Channel | str, site: str = "+", device: str = "+") -> str:
    """A subscription filter, e.g. `linefleet/v1/+/+/desired` for every device."""
    return f"{TOPIC_ROOT}/{site}/{device}/{Channel(channel).value}"


_CHANNELS = {c.value: c for c in Channel}
_ID = re.compile(ID_PATTERN).fullmatch


def parse_topic(name: str) -> Topic | None:
    """The (site, device, channel) of a linefleet topic, or None for anything else.

    (Called for each of the 30,000 messages of a 10,000-device status: the pattern is
    compiled once and the channel looked up in a dict, not through `Channel(...)`.)"""
    parts = name.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != TOPIC_ROOT:
        return None
    channel = _CHANNELS.get(parts[4])
    if channel is None or not (_ID(parts[2]) and _ID(parts[3])):
        return None
    return Topic(parts[2], parts[3], channel)


def client_id(role: Literal["device", "reconciler"], name: str) -> str:
    """Stable MQTT client ids: persistent sessions survive reconnects only with these."""
    return f"linefleet-{role}-{name}"


class Wire(BaseModel):
    """Wire messages are strict about types and tolerant of new fields (forward compatible)."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


# --- desired state (reconciler -> device) ---------------------------------------------------


class ArtifactRef(Wire):
    url: str = Field(min_length=1)
    """Absolute: `oci://HOST/REPO@sha256:…` (fetched by digest from the site's mirror or the
    registry), `https://`, `http://` or `file://`. Never carries credentials: a device reads
    its registry credentials from its own local configuration."""
    sha256: Sha256
    size: int = Field(gt=0)


class Sparse(Wire):
    """Optional fields added after protocol 1's first release are left out while unset, so a
    document that does not use them keeps its bytes (and its content hash)."""

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v is not None or k in _KEEP_NONE}


_KEEP_NONE = frozenset({"candidate", "previous", "canary_fraction", "candidate_predicted"})
"""Fields of protocol 1's first release that are written as `null` (kept as they were)."""


class Normalization(Wire):
    """Model input = (pixel * scale - mean) / std per channel (model contract v2)."""

    scale: float = Field(gt=0)
    mean: list[float] | None = None
    std: list[float] | None = None


class TilingSpec(Wire):
    size: int = Field(gt=0)
    overlap: int = Field(ge=0)


class ModelInput(Sparse):
    shape: list[int] = Field(min_length=4, max_length=4)
    """In `layout` order (NCHW unless said otherwise)."""
    color: ColorOrder
    # model contract v2 (absent: the v1 contract: first input, NCHW, stretch, pixels / 255)
    name: str | None = None
    layout: Literal["NCHW", "NHWC"] | None = None
    resize: Literal["stretch", "letterbox"] | None = None
    normalize: Normalization | None = None
    tiling: TilingSpec | None = None


class ModelOutputs(Sparse):
    """Which graph outputs the task reads (model contract v2; see the catalogue's `Outputs`)."""

    probabilities: str | None = None
    logits: str | None = None
    boxes: str | None = None
    box_format: Literal["yolov8", "yolov5"] | None = None
    score_thresholds: dict[str, float] | None = None
    default_score_threshold: float | None = None
    iou_threshold: float | None = None
    score: str | None = None
    map: str | None = None
    threshold: float | None = None


class ModelSpec(Sparse):
    ref: VersionedRef
    artifact: ArtifactRef
    input: ModelInput
    output_classes: list[str] = Field(min_length=1)
    opset: int
    reference_stats: dict[str, float] = Field(default_factory=dict)
    task: ModelTask | None = None
    """Absent: `classification` (contract v1)."""
    outputs: ModelOutputs | None = None
    """Absent: the v1 contract's one output, `probabilities` [1, K]."""


class CandidateSpec(ModelSpec):
    stage: CandidateStage
    canary_fraction: float | None = None


class CameraSpec(Sparse):
    id: Id
    fps: float = Field(gt=0)
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    roi: list[int] | None = Field(default=None, min_length=4, max_length=4)
    """[x, y, width, height] of the frame the line's models see; absent: the whole frame."""


class TaxonomySpec(Wire):
    ref: VersionedRef
    classes: list[str] = Field(min_length=2)


class TelemetrySpec(Sparse):
    uncertainty_band: list[Fraction] = Field(min_length=2, max_length=2)
    """Only the upper edge counts (see `uncertain_below`)."""
    daily_upload_budget_mb: float = Field(gt=0)
    spool_mb: float = Field(gt=0)
    keep_defects: bool
    keep_disagreements: bool
    # issue 20 (absent: the defaults of `linefleet_core.fleet.TelemetryPolicy`)
    uncertain_below: Fraction | None = None
    audit_rate: Fraction | None = None
    novelty_threshold: float | None = Field(default=None, gt=0)
    doubt_defects_below: Fraction | None = None

    @property
    def uncertain_at(self) -> float:
        """The top confidence at or below which a frame is uncertain (as the policy's)."""
        return self.uncertainty_band[1] if self.uncertain_below is None else self.uncertain_below


class HealthGatesSpec(Wire):
    max_error_rate: float
    max_latency_p95_ms: float
    min_shadow_agreement: float
    max_defect_rate_jump: float
    max_drift_score: float


class LineSpec(Sparse):
    line: LineKey
    cameras: list[CameraSpec] = Field(min_length=1)
    taxonomy: TaxonomySpec
    serving: ModelSpec
    candidate: CandidateSpec | None = None
    previous: ModelSpec | None = None
    """The rollback target the device keeps on disk, ready to switch to."""
    telemetry: TelemetrySpec
    health_gates: HealthGatesSpec
    novelty: ModelSpec | None = None
    """The line's input-novelty model (task `anomaly`); absent: frame-statistics novelty."""

    def models(self) -> list[ModelSpec]:
        """Every model the line needs on disk and loaded: serving, candidate, previous, novelty."""
        found = [self.serving]
        for model in (self.candidate, self.previous, self.novelty):
            if model is not None:
                found.append(model)
        return found


class DeviceSpec(Wire):
    """The signed, hashed part of a desired state: what the device must run."""

    heartbeat_seconds: int = Field(ge=1)
    lines: list[LineSpec] = Field(min_length=1)


class Signature(Wire):
    alg: Literal["ed25519"]
    key_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]
    value: str = Field(min_length=1)
    """Base64 (standard alphabet, padded) of the 64-byte Ed25519 signature."""


class Approval(Wire):
    """Who approved a published change: the forge's merge record, else the git committer."""

    by: str = Field(min_length=1)
    """`Jane Doe <jane@acme.example>` (git identity) or a forge login (`@jdoe`)."""
    via: str = Field(min_length=1)
    """Where it comes from: `pull request #12 (local forge)`, `merge commit`, `commit`."""
    commit: CommitSha
    """The commit whose merge was approved (the published commit)."""
    pull: int | None = None


class DesiredState(Wire):
    protocol: ProtocolField
    kind: Literal["DesiredState"]
    site: Id
    device: Id
    generation: int = Field(ge=1)
    commit: CommitSha
    content_hash: Sha256
    spec: DeviceSpec
    approval: Approval | None = None
    """Who approved the commit this content was published from (not part of `content_hash`)."""
    expires_at: Timestamp | None = None
    """Signed freshness bound (optional): a device refuses the document after this time
    (`expired`), so a replay of an old document to a device whose storage was wiped fails.
    The reconciler re-signs before it passes (`--max-age`)."""
    signature: Signature | None = None


class Removal(Wire):
    """A signed tombstone, retained on a removed device's `desired` topic: "you are no longer
    in the fleet as of `generation`". Signed like a desired state; a device refuses it below
    its replay floor, and afterwards any desired state not newer than it."""

    protocol: ProtocolField
    kind: Literal["Removed"]
    site: Id
    device: Id
    generation: int = Field(ge=1)
    commit: CommitSha
    signature: Signature | None = None


# --- reported state, events, online (device -> reconciler) -----------------------------------


class Applied(Wire):
    """Which desired state a device holds or runs: its generation and content hash."""

    generation: int = Field(ge=0)
    content_hash: Sha256
    commit: CommitSha | None = None


class LineMetrics(Wire):
    """Rolling window of inference statistics; rates are fractions in [0, 1]."""

    window_seconds: float = Field(ge=0)
    frames: int = Field(ge=0)
    error_rate: Fraction = 0.0
    latency_p95_ms: float = Field(default=0.0, ge=0)
    defect_rate: Fraction = 0.0
    drift_score: float = Field(default=0.0, ge=0)
    candidate_frames: int = Field(default=0, ge=0)
    candidate_error_rate: Fraction = 0.0
    candidate_latency_p95_ms: float = Field(default=0.0, ge=0)
    candidate_defect_rate: Fraction = 0.0
    shadow_agreement: Fraction | None = None
    """Share of frames where the candidate agrees with the serving model (shadow and canary)."""


LinePhase = Literal["pending", "downloading", "staged", "serving", "rolled_back", "failed"]


class LineStatus(Wire):
    line: LineKey
    phase: LinePhase
    serving: VersionedRef | None = None
    candidate: VersionedRef | None = None
    stage: CandidateStage | None = None
    previous: VersionedRef | None = None
    message: str = ""
    metrics: LineMetrics | None = None


class ReportedState(Wire):
    protocol: ProtocolField
    kind: Literal["ReportedState"]
    site: Id
    device: Id
    at: Timestamp
    agent: str = ""
    """Agent name and version, for example `linefleet-edge/0.1.0`."""
    desired: Applied | None = None
    """The newest desired state the device accepted (verified and persisted)."""
    applied: Applied | None = None
    """The desired state the device has fully converged to (models staged and switched)."""
    lines: list[LineStatus] = Field(default_factory=list)
    error: str = ""
    """Why the device cannot converge or cannot inspect, empty when it can."""
    warning: str = ""
    """Why the device inspects, but not exactly as declared (frames at another scale than the
    camera declares: the ROI is scaled), empty when it inspects as declared. Optional: agents
    before it never send it, and receivers that do not know it ignore it."""
    signature: Signature | None = None
    """The device's own Ed25519 signature (optional; required by a reconciler that has the
    device's public key): over the canonical JSON without `signature`, as for desired state."""


class EventType(enum.StrEnum):
    """Known event types; receivers must accept (and count) types they do not know."""

    ACTIVATION = "activation"  # a model started serving a line
    ROLLBACK = "rollback"  # the device switched a line back to `previous` (health gate)
    FALLBACK = "fallback"  # a model failed to load; the device kept or restored a working one
    OVERRIDE = "override"  # an operator overrode the desired state locally
    REFUSED_DOCUMENT = "refused-document"  # a desired state failed verification
    DOWNLOAD_FAILED = "download-failed"
    HEALTH_GATE = "health-gate"  # a metric crossed a threshold
    INSPECTION_OVERRIDE = "inspection-override"  # an inspector corrected a decision: a label
    SPOOL_DISCARDED = "spool-discarded"  # a retired line's spooled frames deleted unsent


InstallId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{8,32}$")]


class Event(Wire):
    protocol: ProtocolField
    kind: Literal["Event"]
    site: Id
    device: Id
    seq: int = Field(ge=1, le=MAX_SEQ)
    """Per install, strictly increasing, persisted on the device; receivers drop
    `seq <= last` of the same `install`."""
    install: InstallId | None = None
    """Random id of this installation (its event store): a reinstalled device, whose `seq`
    starts again at 1, sends a new one, so its events are not taken for duplicates. Absent
    from older agents (one sequence per device)."""
    at: Timestamp
    type: str = Field(min_length=1)
    line: LineKey | None = None
    generation: int | None = None
    reason: str = ""
    message: str = ""
    details: dict[str, Any] = Field(default_factory=dict)
    signature: Signature | None = None
    """The device's own signature, as on `ReportedState`."""


class Online(Wire):
    protocol: ProtocolField
    online: bool
    agent: str = ""


def online_payload(online: bool, agent: str = "") -> bytes:
    """The retained birth (`online=True`) and last-will (`online=False`) payloads."""
    body: dict[str, object] = {"protocol": PROTOCOL, "online": online}
    if agent:
        body["agent"] = agent
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


# --- frames (device -> centre): a binary envelope ------------------------------------------


class DetectedBox(Wire):
    """A detector's box on the frame (model contract v2), in frame pixels."""

    label: str
    score: Fraction
    box: list[float] = Field(min_length=4, max_length=4)
    """x1, y1, x2, y2."""


class FrameMeta(Sparse):
    protocol: ProtocolField
    kind: Literal["Frame"]
    site: Id
    device: Id
    line: LineKey
    camera: Id
    frame_id: str = Field(min_length=1, max_length=128)
    captured_at: Timestamp
    reason: Literal["defect", "novel", "uncertain", "disagreement", "audit", "sample"]
    """Why it was kept (docs/protocol.md section 9); `audit`: a random sample of confidently-`ok`
    frames (an escape-rate estimate once labelled); `sample`: sent for another reason."""
    model: VersionedRef
    predicted: str
    confidence: Fraction
    candidate: VersionedRef | None = None
    candidate_predicted: str | None = None
    boxes: list[DetectedBox] | None = None
    """The deciding model's boxes (a detection model); absent otherwise."""
    score: float | None = None
    """The deciding model's anomaly score (an anomaly model); absent otherwise."""
    novelty: float | None = None
    """The frame's input-novelty score (higher = less normal); absent from older devices."""
    novelty_by: str | None = None
    """What scored it: the novelty model's ref, or `frame-stats` (the fallback)."""
    content_type: Literal["image/jpeg"] = "image/jpeg"
    sha256: Sha256
    size: int = Field(gt=0)


class FrameError(ValueError):
    """A frames payload that does not decode; the message says why."""


_HEADER = struct.Struct(">I")
_MAGIC = b"LFF1"


def encode_frame(meta: FrameMeta, jpeg: bytes) -> bytes:
    """`LFF1` + u32 big-endian metadata length + metadata JSON (UTF-8) + the JPEG bytes."""
    head = json.dumps(meta.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode()
    return _MAGIC + _HEADER.pack(len(head)) + head + jpeg


def decode_frame(payload: bytes) -> tuple[FrameMeta, bytes]:
    if len(payload) > MAX_FRAME_BYTES:
        raise FrameError(f"frame of {len(payload)} bytes exceeds {MAX_FRAME_BYTES}")
    if payload[:4] != _MAGIC or len(payload) < 8:
        raise FrameError("not a linefleet frame (expected the 'LFF1' magic)")
    (length,) = _HEADER.unpack_from(payload, 4)
    if 8 + length > len(payload):
        raise FrameError("metadata length runs past the end of the payload")
    try:
        meta = FrameMeta.model_validate_json(payload[8 : 8 + length])
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        where = ".".join(str(p) for p in errors[0]["loc"]) or "(metadata)"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise FrameError(f"bad frame metadata: {where}: {errors[0]['msg']}{more}") from None
    except ValueError as exc:
        raise FrameError(f"bad frame metadata: {exc}") from None
    image = payload[8 + length :]
    if len(image) != meta.size or hashlib.sha256(image).hexdigest() != meta.sha256:
        raise FrameError("image bytes do not match the metadata's size and sha256")
    return meta, image


WIRE_SCHEMAS: dict[str, type[Wire]] = {
    "desired-state": DesiredState,
    "removal": Removal,
    "reported-state": ReportedState,
    "event": Event,
    "online": Online,
    "frame-meta": FrameMeta,
}


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema (draft 2020-12) of every JSON message, as committed in `schema/wire/`."""
    out: dict[str, dict[str, Any]] = {}
    for name, model in WIRE_SCHEMAS.items():
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://linefleet.io/schema/wire/v{PROTOCOL}/{name}.json"
        out[name] = schema
    return out
