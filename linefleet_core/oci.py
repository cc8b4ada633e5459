"""Model artifacts in an OCI registry: `oci://HOST[:PORT]/REPO@sha256:DIGEST` references.

A model is one blob addressed by the sha256 of its bytes (the catalogue's `sha256`), inside
an OCI artifact (an image manifest with an empty config and the model as its only layer), the
convention ORAS, Flux and KServe follow. Devices fetch the blob by digest
(`GET /v2/REPO/blobs/sha256:…`, resumable with `Range`), so the manifest is only there to give
the artifact a tag and keep it from garbage collection.

Loopback registries (`127.0.0.1`, `localhost`, `[::1]`) are spoken to over plain HTTP, every
other one over HTTPS (the rule Docker and ORAS apply). Standard library only: the edge needs
it too. Credentials never appear in a reference: they come from the caller (`Credentials`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from linefleet_core.errors import PermanentError, TemporaryError

if TYPE_CHECKING:
    from email.message import Message

SCHEME = "oci"
MODEL_MEDIA_TYPE = "application/vnd.onnx.model"
ARTIFACT_TYPE = "application/vnd.linefleet.model.v1"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_CONFIG = b"{}"

_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:]+\])(?::[0-9]{1,5})?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPO = rf"{_COMPONENT}(?:/{_COMPONENT})*"
HOST_PATTERN = rf"^{_HOST}$"
REF_PATTERN = re.compile(
    rf"^oci://(?P<host>{_HOST})/(?P<repo>{_REPO})@sha256:(?P<hex>[0-9a-f]{{64}})$"
)
REPO_URL_PATTERN = re.compile(rf"^oci://(?P<host>{_HOST})/(?P<repo>{_REPO})$")
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
CHUNK = 1024 * 1024


class OciError(PermanentError):
    """A reference that does not parse, or a registry that refuses for good."""


@dataclass(frozen=True)
class OciRef:
    """`oci://HOST/REPO@sha256:HEX`: one blob in one repository of one registry."""

    host: str
    repo: str
    sha256: str

    def __str__(self) -> str:
        return f"oci://{self.host}/{self.repo}@sha256:{self.sha256}"

    @property
    def hostname(self) -> str:
        return self.host.rsplit(":", 1)[0] if not self.host.endswith("]") else self.host

    def with_host(self, host: str) -> OciRef:
        return OciRef(host, self.repo, self.sha256)

    def blob_url(self) -> str:
        """The HTTP(S) URL of the blob (`GET` it, with `Range` to resume)."""
        return f"{registry_base(self.host)}/v2/{self.repo}/blobs/sha256:{self.sha256}"


def is_oci(url: str) -> bool:
    return url.startswith(f"{SCHEME}://")


def parse_ref(url: str) -> OciRef:
    """Parse `oci://HOST[:PORT]/REPO@sha256:HEX` (lower-case repository, 64 hex digits)."""
    match = REF_PATTERN.match(url)
    if match is None:
        raise OciError(
            f"{url!r} is not an OCI reference: expected oci://HOST[:PORT]/REPO@sha256:<64 hex>"
        )
    return OciRef(match["host"], match["repo"], match["hex"])


def parse_repo(url: str) -> tuple[str, str]:
    """`oci://HOST[:PORT]/REPO` (an upload target, no digest) as (host, repo)."""
    match = REPO_URL_PATTERN.match(url)
    if match is None:
        raise OciError(f"{url!r}: expected oci://HOST[:PORT]/REPO (lower-case repository)")
    return match["host"], match["repo"]


def registry_base(host: str) -> str:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    scheme = "http" if name in LOOPBACK else "https"
    return f"{scheme}://{host}"


@dataclass(frozen=True)
class Credentials:
    """Read or push credentials for one registry host: a bearer token or a user and password."""

    username: str = ""
    password: str = ""
    token: str = ""

    def header(self) -> str:
        if self.token:
            return f"Bearer {self.token}"
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def auth_headers(host: str, credentials: Mapping[str, Credentials]) -> dict[str, str]:
    found = credentials.get(host)
    return {"Authorization": found.header()} if found else {}


def load_credentials(path: Path) -> dict[str, Credentials]:
    """A device's local registry credentials: JSON `{"HOST[:PORT]": {"token": …}}` or
    `{"HOST[:PORT]": {"username": …, "password": …}}`. Never part of a signed document."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OciError(f"{path}: unreadable registry credentials: {exc}") from None
    if not isinstance(data, dict):
        raise OciError(f"{path}: expected a JSON object keyed by registry host")
    out: dict[str, Credentials] = {}
    for host, entry in data.items():
        if not re.match(HOST_PATTERN, str(host)) or not isinstance(entry, dict):
            raise OciError(f"{path}: {host}: expected HOST[:PORT] -> {{token | username+password}}")
        fields = {k: v for k, v in entry.items() if k in ("username", "password", "token")}
        if not all(isinstance(v, str) for v in fields.values()) or not (
            fields.get("token") or fields.get("username")
        ):
            raise OciError(f"{path}: {host}: give a token, or a username and password (strings)")
        out[str(host)] = Credentials(**fields)
    return out


# --- pushing (the CLI and the trainer; never the edge) -------------------------------------


@dataclass(frozen=True)
class Pushed:
    ref: OciRef
    size: int
    manifest_digest: str
    tag: str | None

    def catalogue_entry(self) -> dict[str, object]:
        return {"url": str(self.ref), "sha256": self.ref.sha256, "size": self.size}


def push_file(
    path: Path,
    target: str,
    *,
    tag: str | None = None,
    credentials: Credentials | None = None,
    timeout: float = 60.0,
) -> Pushed:
    """Upload `path` to `oci://HOST/REPO` as a one-layer OCI artifact; idempotent."""
    return push_bytes(
        path.read_bytes(), path.name, target, tag=tag, credentials=credentials, timeout=timeout
    )


def push_bytes(
    data: bytes,
    title: str,
    target: str,
    *,
    tag: str | None = None,
    credentials: Credentials | None = None,
    timeout: float = 60.0,
) -> Pushed:
    """Upload `data` (named `title` in the manifest) to `oci://HOST/REPO`; idempotent."""
    host, repo = parse_repo(target)
    sha = hashlib.sha256(data).hexdigest()
    client = _Client(host, credentials, timeout)
    client.put_blob(repo, data, sha)
    client.put_blob(repo, EMPTY_CONFIG, hashlib.sha256(EMPTY_CONFIG).hexdigest())
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "artifactType": ARTIFACT_TYPE,
            "config": {
                "mediaType": EMPTY_MEDIA_TYPE,
                "digest": "sha256:" + hashlib.sha256(EMPTY_CONFIG).hexdigest(),
                "size": len(EMPTY_CONFIG),
            },
            "layers": [
                {
                    "mediaType": MODEL_MEDIA_TYPE,
                    "digest": f"sha256:{sha}",
                    "size": len(data),
                    "annotations": {"org.opencontainers.image.title": title},
                }
            ],
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    client.put_manifest(repo, tag or manifest_digest, manifest)
    return Pushed(OciRef(host, repo, sha), len(data), manifest_digest, tag)


def fetch_blob(ref: OciRef, credentials: Credentials | None = None, timeout: float = 60.0) -> bytes:
    """The blob's bytes, checked against the reference's digest."""
    import http.client  # imported where it is used: validate and plan never speak HTTP
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        ref.blob_url(), headers={"Authorization": credentials.header()} if credentials else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data: bytes = response.read()
    except urllib.error.HTTPError as exc:
        raise OciError(f"{ref}: HTTP {exc.code}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise TemporaryError(f"{ref}: {exc}", delay=5.0) from None
    if hashlib.sha256(data).hexdigest() != ref.sha256:
        raise OciError(f"{ref}: the registry sent bytes of another digest")
    return data


def blob_exists(ref: OciRef, credentials: Credentials | None = None, timeout: float = 10.0) -> bool:
    """Whether the registry holds the blob (`HEAD`), with the size the reference implies."""
    return _Client(ref.host, credentials, timeout).has_blob(ref.repo, ref.sha256)


class _Client:
    def __init__(self, host: str, credentials: Credentials | None, timeout: float) -> None:
        self.base = registry_base(host)
        self.headers = {"Authorization": credentials.header()} if credentials else {}
        self.timeout = timeout

    def _call(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Message[str, str]]:
        import http.client
        import urllib.error
        import urllib.request

        request = urllib.request.Request(
            url, data=body, method=method, headers={**self.headers, **(headers or {})}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
                return int(response.status), response.headers
        except urllib.error.HTTPError as exc:
            if method == "HEAD" and exc.code == 404:
                return 404, exc.headers
            detail = exc.read()[:300].decode("utf-8", "replace")
            if exc.code in (401, 403):
                raise OciError(f"{method} {url}: HTTP {exc.code} (credentials?) {detail}") from None
            if exc.code >= 500:
                raise TemporaryError(f"{method} {url}: HTTP {exc.code} {detail}") from None
            raise OciError(f"{method} {url}: HTTP {exc.code} {detail}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            raise TemporaryError(f"{method} {url}: {exc}", delay=5.0) from None

    def has_blob(self, repo: str, sha: str) -> bool:
        status, _ = self._call("HEAD", f"{self.base}/v2/{repo}/blobs/sha256:{sha}")
        return status == 200

    def put_blob(self, repo: str, data: bytes, sha: str) -> None:
        if self.has_blob(repo, sha):
            return
        _, headers = self._call("POST", f"{self.base}/v2/{repo}/blobs/uploads/", b"")
        location = headers.get("Location")
        if not location:
            raise OciError(f"{self.base}: the registry gave no upload location")
        location = urllib.parse.urljoin(self.base + "/", location)
        joiner = "&" if "?" in location else "?"
        self._call(
            "PUT",
            f"{location}{joiner}digest=sha256:{sha}",
            data,
            {"Content-Type": "application/octet-stream"},
        )

    def put_manifest(self, repo: str, reference: str, manifest: bytes) -> None:
        self._call(
            "PUT",
            f"{self.base}/v2/{repo}/manifests/{reference}",
            manifest,
            {"Content-Type": MANIFEST_MEDIA_TYPE},
        )
