"""Air-gapped transfer files: the signed site bundle (in) and the device export (out).

A **bundle** (`linefleet bundle export`) is an uncompressed tar:

- `bundle.json`: the manifest, signed with the fleet's signing key (Ed25519 over its canonical
  JSON without `signature`, as desired states are): site, commit, generation, each device's
  document by sha256, each artifact by sha256 and size;
- `desired/<device>.json`: each device's signed desired state, byte for byte what `publish`
  would send over MQTT;
- `artifacts/<sha256>`: every model those documents name.

The device applies it with exactly the MQTT path's checks (pinned key, signature, content
hash, addressee, replay floor; each artifact's size and sha256 before it can be loaded), and
the manifest's signature keeps a bundle from being trimmed or mixed.

An **edge export** (`linefleet edge export`) is a tar with `outbox.jsonl` (the device's outbox
in delivery order: reports, events, override frames; one JSON object per message with topic,
kind, retain and the payload in base64) and `frames/<n>.lff` (spooled frames, `LFF1`
envelopes). Receivers de-duplicate events by device and `seq` as over MQTT.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidSignature

from linefleet_core.errors import PermanentError
from linefleet_core.signing import SigningKey, TrustedKeys, canonical_json

BUNDLE_FORMAT = 1
MANIFEST = "bundle.json"
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
SHA256 = re.compile(r"^[0-9a-f]{64}$")
ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class BundleError(PermanentError):
    """A bundle or export that is malformed, unsigned, tampered with or not for this device."""


@dataclass(frozen=True)
class Manifest:
    site: str
    commit: str
    generation: int
    devices: dict[str, str]
    """device id -> sha256 of its signed desired-state payload."""
    artifacts: dict[str, int]
    """sha256 -> size."""
    key_id: str

    def body(self) -> dict[str, Any]:
        return {
            "format": BUNDLE_FORMAT,
            "kind": "Bundle",
            "site": self.site,
            "commit": self.commit,
            "generation": self.generation,
            "devices": dict(sorted(self.devices.items())),
            "artifacts": dict(sorted(self.artifacts.items())),
        }


def sign_manifest(manifest: Manifest, key: SigningKey) -> bytes:
    return canonical_json(key.sign(manifest.body()))


def verify_manifest(raw: bytes, trusted: TrustedKeys) -> Manifest:
    """The manifest, if a pinned key signed it; BundleError says why not."""
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise BundleError(f"{MANIFEST}: not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("kind") != "Bundle":
        raise BundleError(f"{MANIFEST}: not a linefleet bundle manifest")
    if doc.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{MANIFEST}: format {doc.get('format')!r}; this reads {BUNDLE_FORMAT}")
    sig = doc.get("signature")
    if not isinstance(sig, dict) or sig.get("alg") != "ed25519":
        raise BundleError(f"{MANIFEST}: unsigned")
    key = trusted.get(str(sig.get("key_id")))
    if key is None:
        raise BundleError(f"{MANIFEST}: signed with key {sig.get('key_id')!r}, which is not pinned")
    body = {k: v for k, v in doc.items() if k != "signature"}
    try:
        key.verify(base64.b64decode(str(sig.get("value")), validate=True), canonical_json(body))
    except (binascii.Error, InvalidSignature, ValueError):
        raise BundleError(f"{MANIFEST}: the signature does not match (tampered?)") from None
    try:
        devices = {str(k): str(v) for k, v in dict(body["devices"]).items()}
        artifacts = {str(k): int(v) for k, v in dict(body["artifacts"]).items()}
        manifest = Manifest(
            str(body["site"]),
            str(body["commit"]),
            int(body["generation"]),
            devices,
            artifacts,
            str(sig["key_id"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{MANIFEST}: malformed ({exc})") from None
    bad = [d for d in devices if not ID.match(d)] + [a for a in artifacts if not SHA256.match(a)]
    if bad or any(not SHA256.match(v) for v in devices.values()):
        raise BundleError(f"{MANIFEST}: malformed names {bad[:3]}")
    return manifest


def write_bundle(
    out: Path, manifest: bytes, documents: Mapping[str, bytes], artifacts: Mapping[str, Path]
) -> None:
    """Write the tar through a temp file and rename it: a reader never sees half a bundle."""
    tmp = out.with_name(f".{out.name}.tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, MANIFEST, manifest)
        for device, payload in sorted(documents.items()):
            _add(tar, f"desired/{device}.json", payload)
        for sha, path in sorted(artifacts.items()):
            info = tarfile.TarInfo(f"artifacts/{sha}")
            info.size = path.stat().st_size
            info.mode = 0o644
            with path.open("rb") as src:
                tar.addfile(info, src)
    tmp.replace(out)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


class BundleReader:
    """Read members of a bundle by name; only regular files, never extracted to disk by name."""

    def __init__(self, path: Path) -> None:
        try:
            self._tar = tarfile.open(path, "r:")  # noqa: SIM115 (closed by close())
            self._members = {
                m.name: m for m in self._tar.getmembers() if m.isfile() and not m.issym()
            }
        except (OSError, tarfile.TarError) as exc:
            raise BundleError(f"{path}: not a readable bundle ({exc})") from None
        self.path = path

    def close(self) -> None:
        self._tar.close()

    def __enter__(self) -> BundleReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, name: str, limit: int) -> bytes:
        member = self._members.get(name)
        if member is None:
            raise BundleError(f"{self.path}: no {name} in the bundle")
        if member.size > limit:
            raise BundleError(f"{self.path}: {name} is {member.size} bytes, over {limit}")
        stream = self._tar.extractfile(member)
        assert stream is not None
        return stream.read()

    def open(self, name: str) -> tuple[IO[bytes], int]:
        member = self._members.get(name)
        if member is None:
            raise BundleError(f"{self.path}: no {name} in the bundle")
        stream = self._tar.extractfile(member)
        assert stream is not None
        return stream, member.size

    def names(self, prefix: str) -> Iterator[str]:
        return (n for n in sorted(self._members) if n.startswith(prefix))


# --- the device export (outbox + spool) ---------------------------------------------------


@dataclass(frozen=True)
class Exported:
    topic: str
    kind: str
    retain: bool
    payload: bytes

    def to_json(self) -> str:
        return json.dumps(
            {
                "topic": self.topic,
                "kind": self.kind,
                "retain": self.retain,
                "payload": base64.b64encode(self.payload).decode(),
            },
            sort_keys=True,
        )


def read_export(path: Path) -> tuple[list[Exported], list[bytes]]:
    """The messages (in delivery order) and the spooled frames of an edge export."""
    with BundleReader(path) as reader:
        messages = []
        raw = reader.read("outbox.jsonl", 1024 * 1024 * 1024).decode("utf-8")
        for number, line in enumerate(raw.splitlines(), start=1):
            try:
                row = json.loads(line)
                messages.append(
                    Exported(
                        str(row["topic"]),
                        str(row["kind"]),
                        bool(row["retain"]),
                        base64.b64decode(row["payload"], validate=True),
                    )
                )
            except (ValueError, KeyError, TypeError, binascii.Error) as exc:
                raise BundleError(f"{path}: outbox.jsonl:{number}: {exc}") from None
        frames = [reader.read(name, 64 * 1024 * 1024) for name in reader.names("frames/")]
    return messages, frames


def is_export(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False
