"""Air-gapped sites: apply a signed bundle with no broker, and export what the device queued.

`import_bundle(agent, path)` checks the bundle manifest's signature (pinned keys), takes this
device's document, and runs it through exactly the checks of a document received over MQTT
(`edge_puller.desired.accept`: pinned key, signature, schema, content hash, addressee, replay
floor) *before* writing anything; then it stages each model from the bundle into the artifact
store through `ArtifactStore.verify` (size and sha256, or nothing is kept), and hands the
document to the agent's inbox, so intake persists it and the planner converges as usual.

`export_device(state_dir, out)` writes the outbox (reports, events, override frames, in
delivery order) and the spooled frames to one file (`linefleet_core.bundle`); with `ack`
(no agent running) what was written is then removed from the device, as a PUBACK would.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from edge_puller.artifacts import ArtifactStore
from edge_puller.desired import accept
from edge_puller.events import Emitter
from edge_puller.outbox import Outbox
from edge_puller.spool import spooled_files, spooled_lines
from edge_puller.state import LocalState
from edge_puller.target import Target
from linefleet_core.atomic import fsync_dir
from linefleet_core.bundle import (
    MANIFEST,
    MAX_MANIFEST_BYTES,
    BundleError,
    BundleReader,
    Exported,
    verify_manifest,
)
from linefleet_core.highwater import floor
from linefleet_core.signing import TrustedKeys, VerifyError
from linefleet_core.wire import MAX_DESIRED_BYTES


class Receiver(Emitter, Protocol):
    """What a bundle is applied to: who the device is and whom it trusts, what it holds, its
    artifact store, and the inbox intake takes documents from (the agent has them all)."""

    site: str
    device: str
    trusted_keys: TrustedKeys
    state: LocalState
    store: ArtifactStore

    def offer_desired(self, payload: bytes) -> None: ...


@dataclass(frozen=True)
class Imported:
    generation: int
    commit: str
    staged: int
    """Models copied from the bundle (the others were on the device already)."""


def import_bundle(agent: Receiver, path: Path) -> Imported:
    with BundleReader(path) as reader:
        manifest = verify_manifest(reader.read(MANIFEST, MAX_MANIFEST_BYTES), agent.trusted_keys)
        if manifest.site != agent.site:
            raise BundleError(f"{path}: a bundle for site {manifest.site}, not {agent.site}")
        expected = manifest.devices.get(agent.device)
        if expected is None:
            raise BundleError(f"{path}: no desired state for device {agent.device}")
        payload = reader.read(f"desired/{agent.device}.json", MAX_DESIRED_BYTES)
        if hashlib.sha256(payload).hexdigest() != expected:
            raise BundleError(f"{path}: desired/{agent.device}.json is not the one signed")
        held = floor(agent.state.marks, agent.trusted_keys)
        try:
            _, target = accept(payload, agent.trusted_keys, agent.device, held)
        except VerifyError as exc:
            agent.emit("refused-document", exc.reason.value, f"bundle {path.name}: {exc}")
            raise BundleError(f"{path}: {exc}") from None
        staged = _stage(agent, reader, target, manifest.artifacts)
    agent.offer_desired(payload)  # intake verifies it again, persists it, then the plan acts
    return Imported(target.document.generation, target.document.commit, staged)


def _stage(agent: Receiver, reader: BundleReader, target: Target, sizes: dict[str, int]) -> int:
    staged = 0
    for sha, model in sorted(target.models().items()):
        if agent.store.has(sha):
            continue
        if sizes.get(sha) != model.artifact.size:
            raise BundleError(f"{reader.path}: {model.ref} ({sha[:12]}) is not in the bundle")
        stream, size = reader.open(f"artifacts/{sha}")
        if size != model.artifact.size:
            raise BundleError(
                f"{reader.path}: {model.ref}: {size} bytes, document says {model.artifact.size}"
            )
        agent.store.receive(sha, model.artifact.size, stream)  # hash mismatch: nothing is kept
        staged += 1
    return staged


@dataclass(frozen=True)
class DeviceExport:
    messages: int
    frames: int
    size: int


def export_device(state_dir: Path, out: Path, *, ack: bool = False) -> DeviceExport:
    """Write the outbox and the spooled frames to `out`; with `ack`, then drop them here."""
    outbox = Outbox(state_dir / "outbox.db")
    try:
        messages = outbox.all()
        frames = [p for folder in spooled_lines(state_dir / "spool").values()
                  for p in spooled_files(folder)]  # fmt: skip
        tmp = out.with_name(f".{out.name}.tmp")
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            lines = "".join(
                Exported(m.topic, m.kind, m.retain, m.payload).to_json() + "\n" for m in messages
            ).encode()
            _add_bytes(tar, "outbox.jsonl", lines)
            for number, frame in enumerate(frames, start=1):
                tar.add(frame, arcname=f"frames/{number:08d}.lff", recursive=False)
        with tmp.open("rb") as written:
            os.fsync(written.fileno())
        tmp.replace(out)
        fsync_dir(out.parent)
        if ack:
            for message in messages:
                outbox.ack(message.id)
            for frame in frames:
                frame.unlink(missing_ok=True)
    finally:
        outbox.close()
    return DeviceExport(len(messages), len(frames), out.stat().st_size)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    import io

    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))
