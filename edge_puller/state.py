"""The device's persisted local state, written atomically, recovered on start.

One JSON file (`state.json`) in the state directory holds: the last verified desired document
exactly as received, the generation held, what each line runs in its A/B slots (the serving
slot and the standby slot that makes rollback a pointer swap), models that failed for good at
this generation, and when the device last heard from the broker. Every write is a full
replacement through `write_atomic`, so a power cut leaves the previous or the new state,
never a torn one. The puller starts and serves from this file alone, with no broker.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from edge_puller.target import CandidateSpec, ModelSpec, Target
from linefleet_core.atomic import clean_temps, write_atomic
from linefleet_core.errors import PermanentError
from linefleet_core.highwater import marked, signer
from linefleet_core.wire import Applied

STATE_FORMAT = 1
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
        if self.slot_a is not None and self.slot_a.sha256 == serving.sha256:
            return ActiveLine(serving, standby, "a", candidate)
        if self.slot_b is not None and self.slot_b.sha256 == serving.sha256:
            return ActiveLine(standby, serving, "b", candidate)
        # A new model goes into the slot that is not serving now; the old one stays as standby.
        if self.serving_slot == "a":
            return ActiveLine(standby, serving, "b", candidate)
        return ActiveLine(serving, standby, "a", candidate)

    def to_dict(self) -> dict[str, Any]:
        return {
            "slot_a": self.slot_a.to_dict() if self.slot_a else None,
            "slot_b": self.slot_b.to_dict() if self.slot_b else None,
            "serving_slot": self.serving_slot,
            "candidate": self.candidate.to_dict() if self.candidate else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActiveLine:
        slot = data["serving_slot"]
        if slot not in ("a", "b"):
            raise ValueError(f"serving_slot must be 'a' or 'b', not {slot!r}")
        return cls(
            slot_a=ModelSpec.from_dict(data["slot_a"]) if data.get("slot_a") else None,
            slot_b=ModelSpec.from_dict(data["slot_b"]) if data.get("slot_b") else None,
            serving_slot=slot,
            candidate=CandidateSpec.from_dict(data["candidate"]) if data.get("candidate") else None,
        )


@dataclass(frozen=True)
class Failure:
    """A model that cannot be installed at this generation (bad hash, does not load, ...)."""

    reason: str
    message: str
    generation: int


@dataclass(frozen=True)
class LocalState:
    document: dict[str, Any] | None = None
    """The last verified desired document, exactly as received."""
    target: Target | None = None
    generation: int = 0
    """The generation held: documents with a lower or equal generation are refused."""
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

    def with_mark(self, document: dict[str, Any], target: Target) -> LocalState:
        """Remember `target` as the newest document accepted from the key that signed it."""
        key = signer(document)
        if key is None:
            return self
        mark = Applied(generation=target.generation, content_hash=target.content_hash)
        return replace(self, marks=marked(self.marks, key, mark))

    def with_desired(self, document: dict[str, Any], target: Target) -> LocalState:
        """Hold a newly verified document: a new generation forgets old failures."""
        return replace(
            self.with_mark(document, target),
            document=document,
            target=target,
            generation=target.generation,
            failures={},
            last_sync=time.time(),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "document": self.document,
            "target": self.target.to_dict() if self.target else None,
            "generation": self.generation,
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
        if data.get("format") != STATE_FORMAT:
            raise ValueError(f"unsupported state format {data.get('format')!r}")
        return cls(
            document=data.get("document"),
            target=Target.from_dict(data["target"]) if data.get("target") else None,
            generation=int(data.get("generation", 0)),
            applied_generation=int(data.get("applied_generation", 0)),
            applied_hash=str(data.get("applied_hash", "")),
            applied_commit=str(data.get("applied_commit", "")),
            reported=str(data.get("reported", "")),
            active={k: ActiveLine.from_dict(v) for k, v in data.get("active", {}).items()},
            failures={
                sha: Failure(str(f["reason"]), str(f["message"]), int(f["generation"]))
                for sha, f in data.get("failures", {}).items()
            },
            last_sync=data.get("last_sync"),
            removed_at=_optional_time(data.get("removed_at")),
            removed_generation=_generation(data.get("removed_generation")),
            marks=_marks(data),
        )


def _generation(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _marks(data: dict[str, Any]) -> dict[str, Applied]:
    """The per-key marks; a state written before they existed marks its document's key."""
    if "marks" in data:
        return {k: Applied.model_validate(m) for k, m in data["marks"].items()}
    document, target = data.get("document"), data.get("target")
    key = signer(document) if isinstance(document, dict) else None
    if key is None or not target:
        return {}
    held = Target.from_dict(target)
    return {key: Applied(generation=held.generation, content_hash=held.content_hash)}


def _optional_time(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a Unix time or null, not {value!r}")
    return float(value)


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
