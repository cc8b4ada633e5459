"""The device's persisted local state, written atomically, recovered on start.

One JSON file (`state.json`) in the state directory holds: the last verified desired document
exactly as received (the typed `Target` and the generation held are derived from it on load,
never written beside it), the newest document accepted per signing key, what each line runs
in its A/B slots (the serving slot and the standby slot that makes rollback a pointer swap, as
wire `ModelSpec`s), models that failed for good at this generation, and when the device last
heard from the broker. Every write is a full
replacement through `write_atomic`, so a power cut leaves the previous or the new state,
never a torn one. The puller starts and serves from this file alone, with no broker.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from edge_puller.target import Target
from linefleet_core.atomic import clean_temps, write_atomic
from linefleet_core.errors import PermanentError
from linefleet_core.highwater import marked
from linefleet_core.wire import (
    Applied,
    ArtifactRef,
    CandidateSpec,
    DesiredState,
    ModelInput,
    ModelOutputs,
    ModelSpec,
    Normalization,
    TilingSpec,
)

STATE_FORMAT = 2
"""2: the document alone holds the target; models are kept as the wire writes them.
1 (read and migrated on load): also a translated copy of the target, models in the edge's
own flat form."""
Slot = Literal["a", "b"]


@dataclass(frozen=True)
class ActiveLine:
    """What one line runs now: slot A, slot B, which of them serves, and the candidate."""

    slot_a: ModelSpec | None
    slot_b: ModelSpec | None
    serving_slot: Slot
    candidate: CandidateSpec | None = None

    @property
    def serving(self) -> ModelSpec | None:
        return self.slot_a if self.serving_slot == "a" else self.slot_b

    @property
    def standby(self) -> ModelSpec | None:
        return self.slot_b if self.serving_slot == "a" else self.slot_a

    def switched_to(
        self, serving: ModelSpec, standby: ModelSpec | None, candidate: CandidateSpec | None
    ) -> ActiveLine:
        """The A/B assignment serving `serving`, keeping a model in the slot it already has."""
        sha = serving.artifact.sha256
        if self.slot_a is not None and self.slot_a.artifact.sha256 == sha:
            return ActiveLine(serving, standby, "a", candidate)
        if self.slot_b is not None and self.slot_b.artifact.sha256 == sha:
            return ActiveLine(standby, serving, "b", candidate)
        # A new model goes into the slot that is not serving now; the old one stays as standby.
        if self.serving_slot == "a":
            return ActiveLine(standby, serving, "b", candidate)
        return ActiveLine(serving, standby, "a", candidate)

    def to_dict(self) -> dict[str, Any]:
        return {
            "slot_a": _dump(self.slot_a),
            "slot_b": _dump(self.slot_b),
            "serving_slot": self.serving_slot,
            "candidate": _dump(self.candidate),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActiveLine:
        slot = data["serving_slot"]
        if slot not in ("a", "b"):
            raise ValueError(f"serving_slot must be 'a' or 'b', not {slot!r}")
        candidate = data.get("candidate")
        return cls(
            slot_a=ModelSpec.model_validate(data["slot_a"]) if data.get("slot_a") else None,
            slot_b=ModelSpec.model_validate(data["slot_b"]) if data.get("slot_b") else None,
            serving_slot=slot,
            candidate=CandidateSpec.model_validate(candidate) if candidate else None,
        )


def _dump(model: ModelSpec | None) -> dict[str, Any] | None:
    return None if model is None else model.model_dump(mode="json")


@dataclass(frozen=True)
class Failure:
    """A model that cannot be installed at this generation (bad hash, does not load, ...)."""

    reason: str
    message: str
    generation: int


@dataclass(frozen=True)
class LocalState:
    document: dict[str, Any] | None = None
    """The last verified desired document, exactly as received (what `state.json` keeps)."""
    target: Target | None = None
    """The same document typed (`Target`): derived from `document`, never written apart."""
    applied_generation: int = 0
    applied_hash: str = ""
    applied_commit: str = ""
    reported: str = ""
    """Fingerprint of the last report queued (the planner reports again when it changes)."""
    active: dict[str, ActiveLine] = field(default_factory=dict)
    failures: dict[str, Failure] = field(default_factory=dict)
    """Permanent failures by model sha256; cleared when a new generation arrives."""
    last_sync: float | None = None
    """Unix time the device last received or confirmed its desired state from the broker."""
    removed_at: float | None = None
    """Unix time a signed removal arrived (removed from the fleet); None while in it."""
    removed_generation: int = 0
    """The generation of that removal: a desired state must be newer to bring the device back
    (so replaying its last document cannot undo the removal)."""
    marks: dict[str, Applied] = field(default_factory=dict)
    """The newest document accepted per signing key (`linefleet_core.highwater`)."""

    @property
    def generation(self) -> int:
        """The generation held: documents with a lower generation are refused (and the same
        generation with other content)."""
        return self.target.document.generation if self.target is not None else 0

    def with_mark(self, target: Target) -> LocalState:
        """Remember `target` as the newest document accepted from the key that signed it."""
        signature = target.document.signature
        if signature is None:
            return self
        doc = target.document
        mark = Applied(generation=doc.generation, content_hash=doc.content_hash)
        return replace(self, marks=marked(self.marks, signature.key_id, mark))

    def with_desired(self, document: dict[str, Any], target: Target) -> LocalState:
        """Hold a newly verified document (as received, and typed): a new generation forgets
        old failures."""
        return replace(
            self.with_mark(target),
            document=document,
            target=target,
            failures={},
            last_sync=time.time(),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "document": self.document,
            "applied_generation": self.applied_generation,
            "applied_hash": self.applied_hash,
            "applied_commit": self.applied_commit,
            "reported": self.reported,
            "active": {k: v.to_dict() for k, v in sorted(self.active.items())},
            "failures": {
                sha: {"reason": f.reason, "message": f.message, "generation": f.generation}
                for sha, f in sorted(self.failures.items())
            },
            "last_sync": self.last_sync,
            "removed_at": self.removed_at,
            "removed_generation": self.removed_generation,
            "marks": {k: m.model_dump(mode="json") for k, m in sorted(self.marks.items())},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LocalState:
        """A state of this format, or of format 1 (migrated: see `_migrated_active`)."""
        version = data.get("format")
        if version not in (1, STATE_FORMAT):
            raise ValueError(f"unsupported state format {version!r}")
        document = data.get("document")
        target = Target(DesiredState.model_validate(document)) if document else None
        active = data.get("active", {})
        return cls(
            document=document,
            target=target,
            applied_generation=int(data.get("applied_generation", 0)),
            applied_hash=str(data.get("applied_hash", "")),
            applied_commit=str(data.get("applied_commit", "")),
            reported=str(data.get("reported", "")),
            active=_migrated_active(active, target)
            if version == 1
            else {k: ActiveLine.from_dict(v) for k, v in active.items()},
            failures={
                sha: Failure(str(f["reason"]), str(f["message"]), int(f["generation"]))
                for sha, f in data.get("failures", {}).items()
            },
            last_sync=data.get("last_sync"),
            removed_at=_optional_time(data.get("removed_at")),
            removed_generation=_generation(data.get("removed_generation")),
            marks=_marks(data, target),
        )


def _generation(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _marks(data: dict[str, Any], target: Target | None) -> dict[str, Applied]:
    """The per-key marks; a state written before they existed marks its document's key."""
    if "marks" in data:
        return {k: Applied.model_validate(m) for k, m in data["marks"].items()}
    return LocalState().with_mark(target).marks if target is not None else {}


def _optional_time(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a Unix time or null, not {value!r}")
    return float(value)


# --- format 1 ---------------------------------------------------------------------------------


def _migrated_active(active: Mapping[str, Any], target: Target | None) -> dict[str, ActiveLine]:
    """Format 1's A/B slots, with each model as the held document names it (by sha256), or,
    for a model it no longer names (a standby kept from an older generation), rebuilt from
    the flat form format 1 wrote (which did not keep `opset`: 0, a value the device never
    reads)."""
    known = target.models() if target is not None else {}

    def slot(flat: dict[str, Any] | None) -> ModelSpec | None:
        return model(flat) if flat else None

    def model(flat: dict[str, Any]) -> ModelSpec:
        found = known.get(str(flat["sha256"]))
        if found is None:
            return _from_flat(flat)
        if isinstance(found, CandidateSpec):  # a slot holds the model, not the candidacy
            return ModelSpec.model_validate(found.model_dump(exclude={"stage", "canary_fraction"}))
        return found

    out = {}
    for key, line in active.items():
        serving = line["serving_slot"]
        if serving not in ("a", "b"):
            raise ValueError(f"serving_slot must be 'a' or 'b', not {serving!r}")
        old = line.get("candidate")
        candidate = None
        if old:
            found = model(old["model"])
            candidate = CandidateSpec.model_validate(
                {
                    **found.model_dump(),
                    "stage": old["stage"],
                    "canary_fraction": float(old.get("canary_fraction") or 0.0) or None,
                }
            )
        out[key] = ActiveLine(
            slot(line.get("slot_a")), slot(line.get("slot_b")), serving, candidate
        )
    return out


def _from_flat(flat: dict[str, Any]) -> ModelSpec:
    """A model in format 1's flat form, as the wire writes it (defaults left out)."""
    scale = float(flat.get("scale", 1 / 255))
    mean, std, tiling = flat.get("mean"), flat.get("std"), flat.get("tiling")
    default_norm = scale == 1 / 255 and mean is None and std is None
    outputs = flat.get("outputs") or {}
    task = flat.get("task", "classification")
    return ModelSpec(
        ref=str(flat["ref"]),
        artifact=ArtifactRef(
            url=str(flat["url"]), sha256=str(flat["sha256"]), size=int(flat["size"])
        ),
        input=ModelInput(
            shape=[int(v) for v in flat["input_shape"]],
            color=flat.get("color", "rgb"),
            name=flat.get("input_name"),
            layout=None if flat.get("layout", "NCHW") == "NCHW" else flat["layout"],
            resize=None if flat.get("resize", "stretch") == "stretch" else flat["resize"],
            normalize=None
            if default_norm
            else Normalization(
                scale=scale,
                mean=None if mean is None else [float(v) for v in mean],
                std=None if std is None else [float(v) for v in std],
            ),
            tiling=None if tiling is None else TilingSpec(size=tiling[0], overlap=tiling[1]),
        ),
        output_classes=[str(c) for c in flat["classes"]],
        opset=0,
        reference_stats={str(k): float(v) for k, v in flat.get("reference_stats", {}).items()},
        task=None if task == "classification" else task,
        outputs=ModelOutputs.model_validate(outputs) if outputs else None,
    )


class StateStore:
    """Reads and writes `state.json` in the state directory."""

    FILE = "state.json"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / self.FILE

    def load(self) -> LocalState:
        """Recover: drop half-written temp files, then read the last complete state.

        Only the agent, holding the folder's lock, may recover: a temp file may be the
        running agent's write in progress. Readers beside the agent use `read()`.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        clean_temps(self.folder)
        return self.read()

    def read(self) -> LocalState:
        """The last complete state, touching nothing (safe while the agent runs)."""
        if not self.path.exists():
            return LocalState()
        try:
            data = json.loads(self.path.read_bytes())
            return LocalState.from_dict(data)
        except (ValueError, KeyError, TypeError) as exc:
            raise PermanentError(f"{self.path}: unreadable local state: {exc}") from None

    def save(self, state: LocalState) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        data = json.dumps(state.to_dict(), indent=1, sort_keys=True).encode()
        write_atomic(self.path, data)
