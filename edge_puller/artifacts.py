"""Content-addressed model store: resumable downloads, size and sha256 checks, no traversal.

Files are named by their sha256 only (validated as 64 hex digits before any path is built),
so nothing in a document can name a path. A download writes `<sha>.part` and resumes it
(HTTP `Range`, or a seek for `file://`); only `verify` turns a complete, matching part into
`<sha>` with an atomic rename. The runtime loads only `<sha>`, so a partial or corrupt
download can never be activated.

`file://` artifacts are refused unless they lie under one of the store's `file_roots`
(`linefleet edge run --artifact-root DIR`); with no root, every `file://` URL is refused. The
path is resolved (symlinks, `..`) before the containment check, and the resolved path is the
one opened. `http(s)://` artifacts are not affected.

A download runs within the agent's convergence loop: `progress` is called before it starts
and after every piece received (what arrived, not a whole chunk), so the loop tells systemd's
watchdog it is alive, reports at its heartbeat, and gives way (`DownloadPaused`, the part
kept) to a stop or a newer desired state, however slowly the server sends.

`oci://HOST/REPO@sha256:…` artifacts are registry blobs fetched by digest over HTTP(S)
(`linefleet_core.oci`); the digest in the URL must be the document's sha256. Credentials (a
read-only token per registry host) come from the device's local configuration
(`credentials`), never from the signed document.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, BinaryIO

from linefleet_core.atomic import fsync_dir
from linefleet_core.errors import PermanentError, TemporaryError
from linefleet_core.oci import Credentials, OciError, auth_headers, parse_ref

CHUNK = 256 * 1024
SHA256 = re.compile(r"^[0-9a-f]{64}$")
RESERVE_BYTES = 64 * 1024 * 1024
"""Free space a download must leave behind for the state, outbox and spool."""


class ArtifactError(PermanentError):
    """The artifact is wrong (size, hash, URL): retrying the same document will not help."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class DownloadPaused(Exception):
    """Raised by a store's `progress` to leave a download (its part kept for a resume)."""


class DiskFullError(TemporaryError):
    reason = "disk-full"


class ArtifactStore:
    def __init__(
        self,
        root: Path,
        reserve_bytes: int = RESERVE_BYTES,
        timeout: float = 30.0,
        file_roots: Sequence[Path] = (),
        credentials: Mapping[str, Credentials] | None = None,
        progress: Callable[[], None] = lambda: None,
    ):
        """`file_roots`: the only folders `file://` artifacts may come from (none: refused);
        `credentials`: registry credentials by `HOST[:PORT]` for `oci://` artifacts;
        `progress`: called before a download and after each piece it receives (may raise
        DownloadPaused)."""
        self.progress = progress
        self.root = root
        self.credentials = dict(credentials or {})
        self.reserve_bytes = reserve_bytes
        self.timeout = timeout
        self.file_roots = tuple(p.resolve() for p in file_roots)
        root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if not SHA256.match(sha256):
            raise ArtifactError("bad-sha256", f"{sha256!r} is not a sha256 (64 hex digits)")
        return self.root / sha256

    def part_path(self, sha256: str) -> Path:
        return self.path(sha256).with_name(f"{sha256}.part")

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def partial_size(self, sha256: str) -> int:
        part = self.part_path(sha256)
        return part.stat().st_size if part.exists() else 0

    def present(self) -> frozenset[str]:
        return frozenset(p.name for p in self.root.iterdir() if SHA256.match(p.name))

    def partials(self) -> dict[str, int]:
        """Downloads in progress: sha256 -> bytes written so far."""
        found = {}
        for entry in self.root.glob("*.part"):
            sha = entry.name.removesuffix(".part")
            if SHA256.match(sha):
                found[sha] = entry.stat().st_size
        return found

    def download(self, url: str, sha256: str, size: int) -> None:
        """Bring `<sha>.part` to `size` bytes from `url`, resuming what is there."""
        part = self.part_path(sha256)
        have = self.partial_size(sha256)
        if have > size:
            part.unlink()
            have = 0
        if have == size:
            return
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme not in ("oci", "file", "http", "https"):
            raise ArtifactError(
                "bad-url", f"{url}: only oci://, file://, http:// and https:// URLs"
            )
        headers: dict[str, str] = {}
        if scheme == "oci":
            try:
                ref = parse_ref(url)
            except OciError as exc:
                raise ArtifactError("bad-url", str(exc)) from None
            if ref.sha256 != sha256:
                raise ArtifactError(
                    "bad-url", f"{url}: the digest is not the document's sha256 {sha256}"
                )
            headers = auth_headers(ref.host, self.credentials)
            url = ref.blob_url()
        source = self._file_source(url) if scheme == "file" else None
        free = shutil.disk_usage(self.root).free
        if free - (size - have) < self.reserve_bytes:
            raise DiskFullError(
                f"not enough disk for {sha256[:12]}: {size - have} bytes needed, "
                f"{free} free, {self.reserve_bytes} reserved",
                delay=60.0,
            )
        self.progress()
        if source is not None:
            self._copy_file(url, source, part, have, size)
        else:
            self._fetch_http(url, part, have, size, headers)

    def receive(self, sha256: str, size: int, source: IO[bytes]) -> None:
        """Stage a model read from `source` (a bundle): written as `<sha>.part`, then `verify`."""
        part = self.part_path(sha256)
        with part.open("wb") as out:
            shutil.copyfileobj(source, out, CHUNK)
            out.flush()
            os.fsync(out.fileno())
        self.verify(sha256, size, resumed=False)  # hash mismatch: the part is removed

    def verify(self, sha256: str, size: int, resumed: bool) -> None:
        """Promote a complete `<sha>.part` to `<sha>` if its size and sha256 match."""
        part = self.part_path(sha256)
        have = self.partial_size(sha256)
        if have != size:
            raise TemporaryError(f"{sha256[:12]}: {have} of {size} bytes downloaded")
        digest = hashlib.sha256()
        with part.open("rb") as src:
            for chunk in iter(lambda: src.read(CHUNK), b""):
                digest.update(chunk)
            os.fsync(src.fileno())
        if digest.hexdigest() != sha256:
            part.unlink()
            if resumed:  # a resume may have glued two different files: try once from scratch
                raise TemporaryError(f"{sha256[:12]}: resumed download did not match; restarting")
            raise ArtifactError(
                "hash-mismatch", f"artifact sha256 is {digest.hexdigest()}, expected {sha256}"
            )
        part.replace(self.path(sha256))
        fsync_dir(self.root)

    def intact(self, sha256: str) -> bool:
        """Whether the stored `<sha>` still hashes to its name (bit rot, a torn disk)."""
        digest = hashlib.sha256()
        try:
            with self.path(sha256).open("rb") as src:
                for chunk in iter(lambda: src.read(CHUNK), b""):
                    digest.update(chunk)
        except FileNotFoundError:
            return False
        return digest.hexdigest() == sha256

    def discard(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)
        fsync_dir(self.root)

    def prune(self, keep: Iterable[str]) -> list[str]:
        """Delete stored models and parts not in `keep`; return the sha256s removed."""
        keep_set = set(keep)
        removed = []
        for entry in self.root.iterdir():
            sha = entry.name.removesuffix(".part")
            if SHA256.match(sha) and sha not in keep_set:
                entry.unlink()
                removed.append(sha)
        if removed:
            fsync_dir(self.root)
        return sorted(set(removed))

    def _file_source(self, url: str) -> Path:
        """The resolved local path of a `file://` URL, if it lies under an artifact root."""
        parts = urllib.parse.urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise ArtifactError("bad-url", f"{url}: a file:// URL must name a local path")
        if not self.file_roots:
            raise ArtifactError(
                "no-artifact-root",
                f"{url}: file:// artifacts are refused on this device (no --artifact-root given)",
            )
        real = Path(urllib.request.url2pathname(parts.path)).resolve()
        if not any(real.is_relative_to(r) for r in self.file_roots):
            allowed = ", ".join(map(str, self.file_roots))
            raise ArtifactError(
                "outside-artifact-roots", f"{url}: not under an artifact root ({allowed})"
            )
        return real

    def _copy_file(self, url: str, source: Path, part: Path, have: int, size: int) -> None:
        try:
            with source.open("rb") as src:
                total = os.fstat(src.fileno()).st_size
                if total != size:
                    raise ArtifactError(
                        "size-mismatch", f"{url}: {total} bytes, the document says {size}"
                    )
                src.seek(have)
                _append(src, part, size - have, self.progress)
        except FileNotFoundError:
            raise ArtifactError("not-found", f"{url}: no such file") from None
        except OSError as exc:
            raise TemporaryError(f"{url}: {exc}", delay=5.0) from None

    def _fetch_http(
        self, url: str, part: Path, have: int, size: int, headers: dict[str, str]
    ) -> None:
        ranged = {"Range": f"bytes={have}-"} if have else {}
        request = urllib.request.Request(url, headers={**headers, **ranged})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status = response.status
                if status == 200 and have:  # the server ignored Range: start over
                    part.unlink()
                    have = 0
                elif status not in (200, 206):
                    raise TemporaryError(f"{url}: HTTP {status}", delay=10.0)
                length = response.headers.get("Content-Length")
                if length is not None and have + int(length) != size:
                    raise ArtifactError(
                        "size-mismatch",
                        f"{url}: server sends {have + int(length)} bytes, document says {size}",
                    )
                _append(response, part, size - have, self.progress)
        except urllib.error.HTTPError as exc:
            if exc.code == 416:  # our part is longer than the file: drop it and retry
                part.unlink(missing_ok=True)
                raise TemporaryError(f"{url}: range not satisfiable; restarting") from None
            if exc.code in (404, 410):
                raise ArtifactError("not-found", f"{url}: HTTP {exc.code}") from None
            if exc.code in (401, 403):  # credentials may be fixed on the device: retry later
                raise TemporaryError(
                    f"{url}: HTTP {exc.code} (check the device's registry credentials)", delay=60.0
                ) from None
            raise TemporaryError(f"{url}: HTTP {exc.code}", delay=10.0) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            raise TemporaryError(f"{url}: {exc}", delay=5.0) from None


def _append(src: BinaryIO, part: Path, remaining: int, progress: Callable[[], None]) -> None:
    """Append up to `remaining` bytes, calling `progress` after each piece as it arrives
    (`read1`: `read` waits for a whole chunk, minutes on a slow link); fsync what was written
    even when the source breaks or `progress` leaves."""
    read = getattr(src, "read1", src.read)
    with part.open("ab") as out:
        try:
            while remaining > 0:
                chunk = read(min(CHUNK, remaining))
                if not chunk:
                    break
                out.write(chunk)
                remaining -= len(chunk)
                progress()
        finally:
            out.flush()
            os.fsync(out.fileno())
    if remaining > 0:
        raise TemporaryError(f"connection ended with {remaining} bytes still to come", delay=2.0)
