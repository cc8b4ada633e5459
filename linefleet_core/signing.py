"""Canonical JSON, content hashes and Ed25519 signatures of desired-state documents.

The signature covers the canonical bytes of the whole document *without* its `signature`
field (unknown fields included, so a newer publisher's additions are protected too). Devices
pin one or more public keys by `key_id` (the first 16 hex digits of the sha256 of the raw
32-byte public key), which is how keys rotate without a flag day (see `docs/protocol.md`).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import ValidationError

from linefleet_core.errors import PermanentError, UsageError, need_directory
from linefleet_core.wire import (
    MAX_DESIRED_BYTES,
    PROTOCOL,
    Applied,
    DesiredState,
    Removal,
    speaks,
)

SIGNING_KEY_ENV = "LINEFLEET_SIGNING_KEY"
PRIVATE_KEY_FILE = "signing.key"
PUBLIC_KEY_SUFFIX = ".pub"


_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
"""What `json.dumps` builds on every call with these options: built once (it keeps no state
between calls)."""
_KEY = json.encoder.encode_basestring  # a string as `_CANONICAL` writes it


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8, no NaN/Infinity: the bytes that are hashed and signed."""
    return _CANONICAL.encode(obj).encode("utf-8")


def _parts(
    obj: Mapping[str, Any], encoded: Mapping[str, bytes], gap: str | None = None
) -> list[bytes]:
    """The canonical JSON of `obj` with the members of `encoded` added (already canonical), in
    pieces: the members in key order, those of `encoded` as given, the others in runs encoded
    at once, and (given `gap`) an empty piece where a member named `gap` (in neither) would
    go. A canonical object is its members in key order joined by commas, so the pieces joined
    by commas (the empty one dropped) are it."""
    parts: list[bytes] = []
    run: dict[str, Any] = {}
    for k in sorted({*obj, *encoded} if gap is None else {*obj, *encoded, gap}):
        if k != gap and k not in encoded:
            run[k] = obj[k]
            continue
        if run:
            parts.append(canonical_json(run)[1:-1])  # `{a,b}` -> `a,b`
            run = {}
        parts.append(b"" if k == gap else _KEY(k).encode("utf-8") + b":" + encoded[k])
    if run:
        parts.append(canonical_json(run)[1:-1])
    return parts


def canonical_with(obj: Mapping[str, Any], encoded: Mapping[str, bytes]) -> bytes:
    """`canonical_json` of `obj` with the members of `encoded` added, given already encoded
    (their canonical JSON): a part many objects share is encoded once."""
    if not encoded:
        return canonical_json(obj)
    return b"{" + b",".join(_parts(obj, encoded)) + b"}"


def content_hash(spec: Mapping[str, Any] | bytes) -> str:
    """sha256 (hex) of the canonical JSON of a document's `spec`: what the device must run
    (given as bytes: that canonical JSON itself)."""
    raw = spec if isinstance(spec, bytes) else canonical_json(spec)
    return hashlib.sha256(raw).hexdigest()


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @cached_property
    def key_id(self) -> str:
        return key_id(self.public)

    def sign(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of `document` with its `signature` set (any previous one is replaced)."""
        body = {k: v for k, v in document.items() if k != "signature"}
        value = base64.b64encode(self.private.sign(canonical_json(body))).decode("ascii")
        return {**body, "signature": {"alg": "ed25519", "key_id": self.key_id, "value": value}}

    def signed_payload(
        self,
        document: Mapping[str, Any],
        big: str | None = None,
        *,
        encoded: Mapping[str, bytes] | None = None,
    ) -> bytes:
        """`canonical_json(self.sign(document))`, encoding each member once (the value under
        the key `big` is both signed and sent): the bytes are the same, the work about a third.

        `encoded` holds members of the document that the caller has already encoded, by key:
        their canonical JSON (what `canonical_json` gives for the value), in place of any
        value `document` has under that key.
        """
        done = {k: v for k, v in (encoded or {}).items() if k != "signature"}
        body = {k: v for k, v in document.items() if k != "signature" and k not in done}
        if big is not None and big in body and big not in done:
            done[big] = canonical_json(body[big])
        parts = _parts(body, done, "signature")
        at = parts.index(b"")
        value = base64.b64encode(
            self.private.sign(b"{" + b",".join(parts[:at] + parts[at + 1 :]) + b"}")
        )
        parts[at] = b'"signature":{"alg":"ed25519","key_id":%s,"value":"%s"}' % (
            _KEY(self.key_id).encode("utf-8"),
            value,
        )
        return b"{" + b",".join(parts) + b"}"

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, pem: bytes, origin: str) -> SigningKey:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"{origin}: not an unencrypted PEM private key ({exc})") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise UsageError(f"{origin}: not an Ed25519 private key")
        return cls(key)

    @classmethod
    def load(cls, path: Path | None) -> SigningKey:
        """From `path`, else from the PEM text in $LINEFLEET_SIGNING_KEY."""
        if path is not None:
            try:
                return cls.from_pem(path.read_bytes(), str(path))
            except OSError as exc:
                raise UsageError(f"--signing-key {path}: {exc.strerror}") from None
        pem = os.environ.get(SIGNING_KEY_ENV)
        if not pem:
            raise UsageError(
                f"no signing key: pass --signing-key FILE or set ${SIGNING_KEY_ENV} "
                "(create one with `linefleet keys generate --out DIR`)"
            )
        return cls.from_pem(pem.encode(), f"${SIGNING_KEY_ENV}")

    def write(self, folder: Path) -> tuple[Path, Path]:
        """Write `signing.key` (mode 0600) and `<key_id>.pub`; refuse to overwrite a key."""
        return self._write_pair(folder / PRIVATE_KEY_FILE, f"{self.key_id}{PUBLIC_KEY_SUFFIX}")

    def write_device(self, folder: Path, device: str) -> tuple[Path, Path]:
        """A device's own key pair: `<device>.key` (0600) and `<device>.pub`; never overwrite."""
        return self._write_pair(folder / f"{device}.key", f"{device}{PUBLIC_KEY_SUFFIX}")

    def _write_pair(self, private_path: Path, public_name: str) -> tuple[Path, Path]:
        private_path.parent.mkdir(parents=True, exist_ok=True)
        public_path = private_path.parent / public_name
        pem = self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise UsageError(f"{private_path} exists; refusing to overwrite a key") from None
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        public_path.write_bytes(public_pem(self.public))
        return private_path, public_path


TrustedKeys = Mapping[str, Ed25519PublicKey]


def load_public_key(pem: bytes, origin: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise UsageError(f"{origin}: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise UsageError(f"{origin}: not an Ed25519 public key")
    return key


def load_trusted_keys(paths: Iterable[Path]) -> dict[str, Ed25519PublicKey]:
    """Public keys from `.pub` files, or from every `.pub` file of a directory."""
    keys: dict[str, Ed25519PublicKey] = {}
    for path in paths:
        files = sorted(path.glob(f"*{PUBLIC_KEY_SUFFIX}")) if path.is_dir() else [path]
        for file in files:
            try:
                key = load_public_key(file.read_bytes(), str(file))
            except OSError as exc:
                raise UsageError(f"{file}: {exc.strerror}") from None
            keys[key_id(key)] = key
    return keys


class Refusal(enum.StrEnum):
    """Why a device refuses a desired-state document (the `reason` of its refused event)."""

    MALFORMED = "malformed"
    OVERSIZE = "oversize"
    UNSUPPORTED_PROTOCOL = "unsupported-protocol"
    UNSIGNED = "unsigned"
    UNKNOWN_KEY = "unknown-key"
    BAD_SIGNATURE = "bad-signature"
    CONTENT_HASH_MISMATCH = "content-hash-mismatch"
    WRONG_DEVICE = "wrong-device"
    STALE = "stale-generation"
    GENERATION_CONFLICT = "generation-conflict"
    UNSIGNED_REMOVAL = "unsigned-removal"  # an empty payload: removal must be a signed tombstone
    EXPIRED = "expired"  # past its signed `expires_at`


class VerifyError(PermanentError):
    def __init__(self, reason: Refusal, message: str, generation: int | None = None) -> None:
        super().__init__(f"refused desired state ({reason.value}): {message}")
        self.reason = reason
        self.generation = generation
        """The generation the refused document claims, when it was readable JSON."""


@dataclass(frozen=True)
class Verified:
    """A verified payload on a `desired` topic: typed, and the JSON object as received (what
    was signed, unknown fields included), parsed once."""

    document: DesiredState | Removal
    raw: dict[str, Any]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def verify(
    payload: bytes,
    trusted_keys: TrustedKeys,
    *,
    device: str | None = None,
    held: Applied | None = None,
    now: float | None = None,
) -> DesiredState:
    """Check a desired-state payload end to end and return it typed, or raise `VerifyError`.

    Order: size, JSON, protocol, signature present, key pinned, signature valid, schema,
    content hash, addressee (`device`), expiry (at `now`, when given and the document has an
    `expires_at`), then freshness against the state the device `held`: an older generation is
    refused, and so is the same generation with different content.
    """
    doc = verify_document(payload, trusted_keys, device=device, held=held, now=now)
    if not isinstance(doc, DesiredState):
        raise VerifyError(Refusal.MALFORMED, "kind: expected a DesiredState, not a removal")
    return doc


def verify_document(
    payload: bytes,
    trusted_keys: TrustedKeys,
    *,
    device: str | None = None,
    held: Applied | None = None,
    now: float | None = None,
) -> DesiredState | Removal:
    """`verify()` for anything on a `desired` topic: a desired state or a signed removal
    tombstone (`kind: "Removed"`), checked the same way (a removal has no content hash; it
    must be newer than the generation held)."""
    return verified(payload, trusted_keys, device=device, held=held, now=now).document


def verified(
    payload: bytes,
    trusted_keys: TrustedKeys,
    *,
    device: str | None = None,
    held: Applied | None = None,
    now: float | None = None,
) -> Verified:
    """`verify_document()` returning the typed document with the JSON object it was read from
    (a receiver that keeps the document as received need not parse the payload again). A
    `VerifyError` carries the generation the payload claims, when it was readable."""
    raw = _json_object(payload)
    try:
        return Verified(_checked(raw, trusted_keys, device=device, held=held, now=now), raw)
    except VerifyError as exc:
        claimed = raw.get("generation")
        if type(claimed) is int:
            exc.generation = claimed
        raise


def _checked(
    raw: dict[str, Any],
    trusted_keys: TrustedKeys,
    *,
    device: str | None,
    held: Applied | None,
    now: float | None,
) -> DesiredState | Removal:
    _signed(raw, trusted_keys)
    try:
        if raw.get("kind") == "Removed":
            doc: DesiredState | Removal = Removal.model_validate(raw)
        else:
            doc = DesiredState.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise VerifyError(Refusal.MALFORMED, f"{where}: {first['msg']}") from None
    if isinstance(doc, DesiredState) and content_hash(raw["spec"]) != doc.content_hash:
        raise VerifyError(Refusal.CONTENT_HASH_MISMATCH, "content_hash does not match spec")
    if device is not None and doc.device != device:
        raise VerifyError(Refusal.WRONG_DEVICE, f"addressed to {doc.device!r}, not {device!r}")
    expires = doc.expires_at if isinstance(doc, DesiredState) else None
    if now is not None and expires is not None and now > _epoch(expires):
        raise VerifyError(Refusal.EXPIRED, f"expired at {expires.isoformat()}")
    if held is not None:
        if doc.generation < held.generation or (
            isinstance(doc, Removal) and doc.generation == held.generation
        ):
            raise VerifyError(
                Refusal.STALE, f"generation {doc.generation} is older than {held.generation}"
            )
        if (
            isinstance(doc, DesiredState)
            and doc.generation == held.generation
            and doc.content_hash != held.content_hash
        ):
            raise VerifyError(
                Refusal.GENERATION_CONFLICT,
                f"generation {doc.generation} with different content than the one held",
            )
    return doc


def signed_by(raw: Mapping[str, Any], key: Ed25519PublicKey) -> str | None:
    """Why `raw` (a device's report or event) is not signed by `key`; None when it is."""
    sig = raw.get("signature")
    if not isinstance(sig, dict):
        return "unsigned"
    if sig.get("alg") != "ed25519" or sig.get("key_id") != key_id(key):
        return "bad_signature"
    try:
        value = base64.b64decode(str(sig.get("value")), validate=True)
        key.verify(value, canonical_json({k: v for k, v in raw.items() if k != "signature"}))
    except (binascii.Error, InvalidSignature, ValueError):
        return "bad_signature"
    return None


def load_device_keys(folder: Path) -> dict[str, Ed25519PublicKey]:
    """`<device-id>.pub` files (from `linefleet keys device`): device id -> public key."""
    need_directory("--device-keys", folder)
    keys = {}
    for file in sorted(folder.glob(f"*{PUBLIC_KEY_SUFFIX}")):
        try:
            keys[file.name[: -len(PUBLIC_KEY_SUFFIX)]] = load_public_key(
                file.read_bytes(), str(file)
            )
        except OSError as exc:
            raise UsageError(f"{file}: {exc.strerror}") from None
    return keys


def _epoch(moment: dt.datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()


def _json_object(payload: bytes) -> dict[str, Any]:
    """Steps 1-2 of docs/protocol.md 4.1: size, JSON (an object)."""
    if len(payload) > MAX_DESIRED_BYTES:
        raise VerifyError(Refusal.OVERSIZE, f"{len(payload)} bytes > {MAX_DESIRED_BYTES}")
    try:
        raw = json.loads(payload.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # nesting too deep
        raise VerifyError(Refusal.MALFORMED, f"not UTF-8 JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise VerifyError(Refusal.MALFORMED, "expected a JSON object")
    return raw


def _signed(raw: dict[str, Any], trusted_keys: TrustedKeys) -> None:
    """Steps 3-4 of docs/protocol.md 4.1: protocol, a valid pinned signature."""
    if not speaks(raw.get("protocol")):
        raise VerifyError(
            Refusal.UNSUPPORTED_PROTOCOL,
            f"protocol {raw.get('protocol')!r}; this receiver speaks {PROTOCOL}",
        )
    sig = raw.get("signature")
    if sig is None:
        raise VerifyError(Refusal.UNSIGNED, "the document has no signature")
    if not isinstance(sig, dict) or sig.get("alg") != "ed25519":
        raise VerifyError(Refusal.BAD_SIGNATURE, "signature must be {alg: ed25519, ...}")
    key = trusted_keys.get(str(sig.get("key_id")))
    if key is None:
        pinned = ", ".join(sorted(trusted_keys)) or "none"
        raise VerifyError(
            Refusal.UNKNOWN_KEY, f"key_id {sig.get('key_id')!r} is not pinned (pinned: {pinned})"
        )
    try:
        value = base64.b64decode(str(sig.get("value")), validate=True)
        body = {k: v for k, v in raw.items() if k != "signature"}
        key.verify(value, canonical_json(body))
    except (binascii.Error, InvalidSignature, ValueError):
        raise VerifyError(Refusal.BAD_SIGNATURE, "the signature does not match") from None
