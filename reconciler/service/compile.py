"""Compile the fleet at one commit into one desired-state document per edge device (pure).

Deterministic: the same fleet, commit, generation and artifact base give byte-identical
documents (devices, lines and cameras are sorted; every float is written as a float). The
documents are unsigned; `reconciler.service.publish` signs them.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TypeVar

from linefleet_core import artifactref
from linefleet_core.catalogue import InputSpec, ModelVersion, Normalize, Outputs
from linefleet_core.errors import PermanentError
from linefleet_core.fleet import Candidate, EdgeDevice, HealthGates, Line, Roi, TelemetryPolicy
from linefleet_core.gcpause import paused_gc
from linefleet_core.oci import OciError, is_oci, parse_ref
from linefleet_core.refs import line_key
from linefleet_core.signing import canonical_with, content_hash
from linefleet_core.spec import FleetSpec
from linefleet_core.taxonomy import Taxonomy
from linefleet_core.wire import (
    PROTOCOL,
    Approval,
    ArtifactRef,
    CameraSpec,
    CandidateSpec,
    DesiredState,
    DeviceSpec,
    HealthGatesSpec,
    LineSpec,
    ModelInput,
    ModelOutputs,
    ModelSpec,
    Normalization,
    TaxonomySpec,
    TelemetrySpec,
    TilingSpec,
)
from linefleet_core.wiredump import Dumper

T = TypeVar("T")


class CompileError(PermanentError):
    """The fleet refers to something it does not define (`linefleet validate` catches these)."""


def resolve_artifact_url(url: str, artifact_base: str, mirror: str | None = None) -> str:
    """Absolute URL for a catalogue artifact; relative paths resolve against `artifact_base`.

    Remote URLs (`artifactref.REMOTE_SCHEMES`) stay as they are; `artifacts/x.onnx` and
    `file://artifacts/x.onnx` (a repository-relative path written as a file URL) become
    `<artifact_base>/artifacts/x.onnx`. `oci://HOST/REPO@sha256:…` becomes
    `oci://MIRROR/REPO@sha256:…` when the device's site names an artifact mirror (the same
    digest: a pull-through cache serves the same bytes under the same repository name). What
    is allowed at all is `artifactref.parse`, the rules `validate` applies: what it accepts
    compiles.
    """
    try:
        where = artifactref.parse(url)
    except ValueError as exc:
        raise CompileError(str(exc)) from None
    if is_oci(url):
        try:
            ref = parse_ref(url)
        except OciError as exc:
            raise CompileError(f"artifact url {exc}") from None
        return str(ref.with_host(mirror)) if mirror else str(ref)
    if isinstance(where, artifactref.Remote):
        return url
    return artifact_base.rstrip("/") + "/" + where.path


Memo = dict[tuple[str, ...], object]
"""Parts compiled once per fleet and shared by every line that names them (a model version,
a taxonomy, the health gates): pass one to `compile_device` for all devices of one spec."""


def _model(
    spec: FleetSpec,
    ref: str,
    where: str,
    artifact_base: str,
    mirror: str | None,
    memo: Memo,
) -> ModelSpec:
    key = ("model", ref, artifact_base, mirror or "")
    found = memo.get(key)
    if isinstance(found, ModelSpec):
        return found
    version = spec.model_version(ref)
    if version is None:
        raise CompileError(f"{where}: unknown model {ref!r}")
    memo[key] = compiled = model_spec(ref, version, artifact_base, mirror)
    return compiled


def model_spec(
    ref: str, version: ModelVersion, artifact_base: str, mirror: str | None
) -> ModelSpec:
    """One catalogue version as documents carry it."""
    return ModelSpec(
        ref=ref,
        artifact=ArtifactRef(
            url=resolve_artifact_url(version.artifact.url, artifact_base, mirror),
            sha256=version.artifact.sha256,
            size=version.artifact.size,
        ),
        input=_input(version.input),
        output_classes=list(version.output_classes),
        opset=version.opset,
        reference_stats={k: float(v) for k, v in sorted(version.reference_stats.items())},
        task=None if version.task == "classification" else version.task,
        outputs=_outputs(version.outputs),
    )


def _input(spec: InputSpec) -> ModelInput:
    """Contract v2 fields only where they differ from v1 (a v1 model keeps its bytes)."""
    norm = spec.normalize
    return ModelInput(
        shape=list(spec.shape),
        color=spec.color,
        name=spec.name,
        layout=None if spec.layout == "NCHW" else spec.layout,
        resize=None if spec.resize == "stretch" else spec.resize,
        normalize=None
        if norm == Normalize()
        else Normalization(
            scale=float(norm.scale),
            mean=None if norm.mean is None else [float(v) for v in norm.mean],
            std=None if norm.std is None else [float(v) for v in norm.std],
        ),
        tiling=None
        if spec.tiling is None
        else TilingSpec(size=spec.tiling.size, overlap=spec.tiling.overlap),
    )


def _outputs(outputs: Outputs) -> ModelOutputs | None:
    if outputs == Outputs():
        return None
    default = Outputs()
    changed = {
        name: value
        for name, value in outputs.model_dump().items()
        if value != getattr(default, name)
    }
    for name in ("default_score_threshold", "iou_threshold", "threshold"):
        if changed.get(name) is not None:
            changed[name] = float(changed[name])
    if "score_thresholds" in changed:
        changed["score_thresholds"] = {
            k: float(v) for k, v in sorted(changed["score_thresholds"].items())
        }
    return ModelOutputs.model_validate(changed)


def _candidate(
    spec: FleetSpec,
    cand: Candidate,
    where: str,
    artifact_base: str,
    mirror: str | None,
    memo: Memo,
) -> CandidateSpec:
    if spec.model_version(cand.model) is None:
        raise CompileError(f"{where}: unknown candidate model {cand.model!r}")
    fraction = None if cand.canary_fraction is None else float(cand.canary_fraction)
    model = _model(spec, cand.model, where, artifact_base, mirror, memo)
    key = ("candidate", cand.model, artifact_base, mirror or "", cand.stage, repr(fraction))
    return _shared(
        memo,
        key,
        lambda: CandidateSpec.model_validate(
            {**dict(model), "stage": cand.stage, "canary_fraction": fraction}
        ),
    )


def _roi(roi: Roi | None) -> list[int] | None:
    return None if roi is None else [roi.x, roi.y, roi.width, roi.height]


def _telemetry(policy: TelemetryPolicy) -> TelemetrySpec:
    return TelemetrySpec(
        uncertainty_band=[float(x) for x in policy.uncertainty_band],
        daily_upload_budget_mb=float(policy.daily_upload_budget_mb),
        spool_mb=float(policy.spool_mb),
        keep_defects=policy.keep_defects,
        keep_disagreements=policy.keep_disagreements,
        uncertain_below=_float(policy.uncertain_below),
        audit_rate=_float(policy.audit_rate),
        novelty_threshold=_float(policy.novelty_threshold),
        doubt_defects_below=_float(policy.doubt_defects_below),
    )


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _gates(gates: HealthGates) -> HealthGatesSpec:
    return HealthGatesSpec(
        max_error_rate=float(gates.max_error_rate),
        max_latency_p95_ms=float(gates.max_latency_p95_ms),
        min_shadow_agreement=float(gates.min_shadow_agreement),
        max_defect_rate_jump=float(gates.max_defect_rate_jump),
        max_drift_score=float(gates.max_drift_score),
    )


def compile_line(
    spec: FleetSpec,
    line: Line,
    camera_ids: list[str],
    artifact_base: str,
    memo: Memo | None = None,
) -> LineSpec:
    memo = {} if memo is None else memo
    where = line.key
    site = spec.sites.get(line.site)
    mirror = site.artifact_mirror if site is not None else None
    taxonomy = spec.taxonomies.get(line.taxonomy)
    if taxonomy is None:
        raise CompileError(f"{where}: unknown taxonomy {line.taxonomy!r}")
    cameras = {c.id: c for c in line.cameras}
    missing = sorted(set(camera_ids) - set(cameras))
    if missing:
        raise CompileError(f"{where}: no camera {', '.join(missing)}")
    rollout = line.rollout
    return LineSpec(
        line=line.key,
        cameras=[
            CameraSpec(
                id=cam,
                fps=float(cameras[cam].fps),
                width=cameras[cam].resolution.width,
                height=cameras[cam].resolution.height,
                roi=_roi(cameras[cam].roi),
            )
            for cam in sorted(set(camera_ids))
        ],
        taxonomy=_shared(memo, ("taxonomy", taxonomy.ref), lambda: _taxonomy(taxonomy)),
        serving=_model(spec, rollout.serving, f"{where}: serving", artifact_base, mirror, memo),
        candidate=None
        if rollout.candidate is None
        else _candidate(
            spec, rollout.candidate, f"{where}: candidate", artifact_base, mirror, memo
        ),
        previous=None
        if rollout.previous is None
        else _model(spec, rollout.previous, f"{where}: previous", artifact_base, mirror, memo),
        telemetry=_telemetry(rollout.telemetry),
        health_gates=_shared(memo, ("gates",), lambda: _gates(spec.policy.health_gates)),
        novelty=None
        if rollout.novelty is None
        else _model(spec, rollout.novelty.ref, f"{where}: novelty", artifact_base, mirror, memo),
    )


def _taxonomy(taxonomy: Taxonomy) -> TaxonomySpec:
    return TaxonomySpec(ref=taxonomy.ref, classes=taxonomy.class_ids)


def _shared(memo: Memo, key: tuple[str, ...], build: Callable[[], T]) -> T:
    if key not in memo:
        memo[key] = build()
    return memo[key]  # type: ignore[return-value]  # built by `build` under this key


def compile_device(
    spec: FleetSpec,
    device: EdgeDevice,
    commit: str,
    generation: int,
    artifact_base: str,
    memo: Memo | None = None,
    approval: Approval | None = None,
) -> DesiredState:
    memo = {} if memo is None else memo
    lines = []
    for serves in device.serves:
        key = line_key(device.site, serves.line)
        line = spec.lines.get(key)
        if line is None:
            raise CompileError(f"device {device.id}: serves unknown line {key!r}")
        lines.append(compile_line(spec, line, list(serves.cameras), artifact_base, memo))
    body = DeviceSpec(
        heartbeat_seconds=spec.policy.heartbeat_seconds,
        lines=sorted(lines, key=lambda item: item.line),
    )
    dumper = _shared(memo, ("dumper",), Dumper)  # the shared parts are dumped once
    return DesiredState(
        protocol=PROTOCOL,
        kind="DesiredState",
        site=device.site,
        device=device.id,
        generation=generation,
        commit=commit,
        content_hash=content_hash(encoded_spec(body, dumper)),
        spec=body,
        approval=approval,
    )


def compile_fleet(
    spec: FleetSpec,
    commit: str,
    generation: int,
    artifact_base: str,
    approval: Approval | None = None,
) -> dict[str, DesiredState]:
    """One unsigned desired state per device id, in device-id order."""
    docs = Documents(spec, commit, generation, artifact_base, approval)
    return docs.compile(list(docs))


class Documents(Mapping[str, DesiredState]):
    """The unsigned desired state of every device of `spec`, by device id in id order, each
    compiled when first asked for (`compile` compiles many at once), all sharing one `Memo`.
    Documents another process compiled and signed (`reconciler.service.publish`) are compiled
    here only if someone reads them."""

    def __init__(
        self,
        spec: FleetSpec,
        commit: str,
        generation: int,
        artifact_base: str,
        approval: Approval | None = None,
    ) -> None:
        self.spec, self.commit, self.generation = spec, commit, generation
        self.artifact_base, self.approval = artifact_base, approval
        self._ids = sorted(spec.devices)
        self._done: dict[str, DesiredState] = {}
        self._memo: Memo = {}

    def compile(self, ids: Iterable[str]) -> dict[str, DesiredState]:
        """The documents of `ids` (in that order)."""
        with paused_gc():  # every object built here survives: cycle collection finds nothing
            return {device: self[device] for device in ids}

    def __getitem__(self, device: str) -> DesiredState:
        found = self._done.get(device)
        if found is None:
            found = self._done[device] = compile_device(
                self.spec,
                self.spec.devices[device],
                self.commit,
                self.generation,
                self.artifact_base,
                self._memo,
                self.approval,
            )
        return found

    @property
    def built(self) -> int:
        """How many documents this process has compiled so far."""
        return len(self._done)

    def __contains__(self, device: object) -> bool:
        return device in self.spec.devices

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


def document_body(
    doc: DesiredState, dumper: Dumper | None = None, *, spec: bool = True
) -> dict[str, object]:
    """The JSON object to sign: the document without its `signature`, and without an unset
    `approval` or `expires_at`, so documents without them read as they always did.

    With `dumper` (one for many documents), parts the documents share are dumped once.
    Without `spec`, the `spec` member is left out (`encoded_spec` gives it already encoded).
    """
    drop = {"signature", *(k for k in ("approval", "expires_at") if getattr(doc, k) is None)}
    if not spec:
        drop.add("spec")
    if dumper is None:
        return doc.model_dump(mode="json", exclude=drop)
    return dumper.dump(doc, exclude=drop)


_ENCODED: dict[int, tuple[weakref.ref[DeviceSpec], bytes]] = {}


def encoded_spec(spec: DeviceSpec, dumper: Dumper | None = None) -> bytes:
    """`canonical_json(spec.model_dump(mode="json"))`: the bytes a document's `content_hash`
    is the sha256 of, and that its signature covers. Encoded once per `DeviceSpec` object
    (compiling a document encodes its spec for the hash; signing it reuses the bytes): the
    models are frozen, and an object's bytes are forgotten when it goes."""
    key = id(spec)
    found = _ENCODED.get(key)
    if found is not None and found[0]() is spec:
        return found[1]
    raw = _encode_spec(spec, dumper or Dumper())

    def forget(ref: weakref.ref[DeviceSpec]) -> None:
        if _ENCODED.get(key, (None, b""))[0] is ref:  # (not a newer object's entry)
            _ENCODED.pop(key, None)

    _ENCODED[key] = (weakref.ref(spec, forget), raw)
    return raw


SHARED_PARTS = ("taxonomy", "serving", "candidate", "previous", "health_gates", "novelty")
"""`LineSpec` members a compile shares between lines (`Memo`): encoded once, then spliced."""


def _encode_spec(spec: DeviceSpec, dumper: Dumper) -> bytes:
    """`canonical_json(dumper.dump(spec))`, each shared part of a line encoded once."""
    lines = []
    for line in spec.lines:
        shared = {}
        for name in SHARED_PARTS:
            part = getattr(line, name)
            if part is not None:  # (an unset one is left to the dump: `null` or absent)
                shared[name] = dumper.encoded(part)
        lines.append(canonical_with(dumper.dump(line, exclude=shared), shared))
    encoded_lines = b"[" + b",".join(lines) + b"]"
    return canonical_with(dumper.dump(spec, exclude=("lines",)), {"lines": encoded_lines})


def unreachable_urls(docs: Mapping[str, DesiredState]) -> list[str]:
    """`device: model: url` for every `file://` URL in the documents (pure).

    A `file://` URL names a path on the machine that publishes: only a device on that same
    machine (tests, the demo without a registry) can open it.
    """
    found = set()
    for doc in docs.values():
        for line in doc.spec.lines:
            for model in (line.serving, line.previous, line.candidate, line.novelty):
                if model is not None and model.artifact.url.startswith("file:"):
                    found.add(f"{doc.site}/{doc.device}: {model.ref}: {model.artifact.url}")
    return sorted(found)
