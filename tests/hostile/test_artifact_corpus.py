"""Hostile artifact references against the edge's content-addressed store.

Path traversal cannot happen through names (files are named by a validated sha256), URLs are
limited to file/http/https, and a size that lies is caught before a byte is trusted: the
store never writes more than the signed `size`, never activates bytes whose sha256 differs,
and refuses a download that would eat the disk's reserve.

Artifact roots: `file://` URLs are accepted only under a folder given with `linefleet edge run
--artifact-root DIR` (`outside-artifact-roots` otherwise, after resolving `..` and symlinks).
Without any root (the default) every `file://` URL is refused (`no-artifact-root`), so a signed
document cannot make the agent read an arbitrary file on the device.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from edge_puller.artifacts import ArtifactError, ArtifactStore, DiskFullError
from linefleet_core.errors import TemporaryError
from tests.integration.edge.artifact_server import Files, serve

SHA = "ab" * 32


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    """A store whose only artifact root is `tmp_path` (where `_source` writes)."""
    return ArtifactStore(tmp_path / "models", reserve_bytes=0, file_roots=[tmp_path])


def _source(tmp_path: Path, data: bytes) -> tuple[str, str]:
    path = tmp_path / "src.onnx"
    path.write_bytes(data)
    return path.as_uri(), hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    "name",
    ["../../etc/passwd", "..", "/etc/shadow", "AB" * 32, "ab" * 31, "ab" * 32 + "/x", ""],
)
def test_a_name_that_is_not_a_sha256_never_becomes_a_path(store: ArtifactStore, name: str) -> None:
    with pytest.raises(ArtifactError) as refused:
        store.path(name)
    assert refused.value.reason == "bad-sha256"
    assert not any(store.root.iterdir())


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/m.onnx", "gopher://x/1", "data:,hello", "jar:file:///m!/x", "m.onnx"],
)
def test_only_file_http_and_https_urls(store: ArtifactStore, url: str) -> None:
    with pytest.raises(ArtifactError) as refused:
        store.download(url, SHA, 10)
    assert refused.value.reason == "bad-url"


def test_a_file_larger_than_its_signed_size_is_refused(
    store: ArtifactStore, tmp_path: Path
) -> None:
    url, sha = _source(tmp_path, b"x" * 5000)
    with pytest.raises(ArtifactError) as refused:
        store.download(url, sha, 4096)
    assert refused.value.reason == "size-mismatch"
    assert "5000 bytes, the document says 4096" in str(refused.value)
    assert not store.has(sha)


def test_a_size_the_disk_cannot_hold_is_refused_before_downloading(
    tmp_path: Path,
) -> None:
    store = ArtifactStore(tmp_path / "models", file_roots=[tmp_path])  # 64 MiB reserve
    url, sha = _source(tmp_path, b"x")
    with pytest.raises(DiskFullError) as refused:
        store.download(url, sha, 10**15)  # a petabyte: a lying or absurd size
    assert "not enough disk" in str(refused.value)
    assert store.partial_size(sha) == 0


def test_bytes_that_do_not_hash_to_the_signed_sha_are_never_activated(
    store: ArtifactStore, tmp_path: Path
) -> None:
    url, _ = _source(tmp_path, b"not the model")
    store.download(url, SHA, len(b"not the model"))
    with pytest.raises(ArtifactError) as refused:
        store.verify(SHA, len(b"not the model"), resumed=False)
    assert refused.value.reason == "hash-mismatch"
    assert not store.has(SHA) and store.partial_size(SHA) == 0


def test_an_http_server_that_sends_more_than_it_announces_is_refused(
    store: ArtifactStore,
) -> None:
    data = b"m" * 8192
    with serve(Files({"/m.onnx": data})) as base, pytest.raises(ArtifactError) as refused:
        store.download(f"{base}/m.onnx", hashlib.sha256(data[:4096]).hexdigest(), 4096)
    assert refused.value.reason == "size-mismatch"


class _Endless(BaseHTTPRequestHandler):
    """No Content-Length, then far more bytes than any document declares."""

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        try:
            for _ in range(256):
                self.wfile.write(b"z" * 65536)
        except OSError:
            return


@pytest.fixture
def endless() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Endless)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/m.onnx"
    server.shutdown()
    server.server_close()


def test_a_stream_without_length_is_cut_at_the_signed_size(
    store: ArtifactStore, endless: str
) -> None:
    store.download(endless, SHA, 4096)
    assert store.partial_size(SHA) == 4096  # never a byte more than signed
    with pytest.raises(ArtifactError):
        store.verify(SHA, 4096, resumed=False)


def test_a_vanished_file_is_permanent_an_unreadable_one_temporary(
    store: ArtifactStore, tmp_path: Path
) -> None:
    with pytest.raises(ArtifactError) as gone:
        store.download((tmp_path / "nope.onnx").as_uri(), SHA, 10)
    assert gone.value.reason == "not-found"
    folder = tmp_path / "a-directory"
    folder.mkdir()
    with pytest.raises(TemporaryError):
        store.download(folder.as_uri(), SHA, 10)


@pytest.mark.parametrize(
    "target",
    [
        "/etc/hostname",
        "{root}/../outside.onnx",
        "{root}/link-out.onnx",
        "{root}/%2e%2e/outside.onnx",
        "{root}-sibling/m.onnx",
    ],
)
def test_a_file_url_outside_the_artifact_roots_is_refused(tmp_path: Path, target: str) -> None:
    """`linefleet edge run --artifact-root DIR`: `..`, symlinks and look-alike prefixes fail."""
    root = tmp_path / "artifacts"
    root.mkdir()
    (tmp_path / "outside.onnx").write_bytes(b"secret")
    (root / "link-out.onnx").symlink_to(tmp_path / "outside.onnx")
    (tmp_path / "artifacts-sibling").mkdir()
    (tmp_path / "artifacts-sibling" / "m.onnx").write_bytes(b"secret")
    store = ArtifactStore(tmp_path / "models", reserve_bytes=0, file_roots=[root])
    with pytest.raises(ArtifactError) as refused:
        store.download(f"file://{target.format(root=root)}", SHA, 6)
    assert refused.value.reason == "outside-artifact-roots"
    assert store.partial_size(SHA) == 0


def test_a_file_url_inside_an_artifact_root_is_accepted_even_through_a_symlinked_root(
    tmp_path: Path,
) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real)
    data = b"model bytes"
    (real / "m.onnx").write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    store = ArtifactStore(tmp_path / "models", reserve_bytes=0, file_roots=[tmp_path / "alias"])
    store.download((tmp_path / "alias" / "m.onnx").as_uri(), sha, len(data))
    store.verify(sha, len(data), resumed=False)
    assert store.path(sha).read_bytes() == data


@pytest.mark.parametrize("target", ["/etc/hostname", "{tmp}/src.onnx"])
def test_without_an_artifact_root_every_file_url_is_refused(tmp_path: Path, target: str) -> None:
    """The default (no --artifact-root): a signed `file://` URL reads nothing on the device."""
    _, sha = _source(tmp_path, b"model bytes")
    store = ArtifactStore(tmp_path / "models", reserve_bytes=0)
    with pytest.raises(ArtifactError) as refused:
        store.download(f"file://{target.format(tmp=tmp_path)}", sha, 11)
    assert refused.value.reason == "no-artifact-root"
    assert "no --artifact-root" in str(refused.value)
    assert store.partial_size(sha) == 0 and not store.has(sha)


def test_a_file_url_with_a_host_is_refused(store: ArtifactStore) -> None:
    with pytest.raises(ArtifactError) as refused:
        store.download("file://fileserver/share/m.onnx", SHA, 10)
    assert refused.value.reason == "bad-url"


@pytest.mark.parametrize(
    "url",
    [
        "../../etc/passwd",
        "file://../../etc/passwd",
        "artifacts/../../../etc/shadow",
        "file://artifacts/../../outside.onnx",
    ],
)
def test_relative_catalogue_urls_cannot_leave_the_repository(url: str) -> None:
    from reconciler.service.compile import CompileError, resolve_artifact_url

    with pytest.raises(CompileError) as refused:
        resolve_artifact_url(url, "https://artifacts.example/fleet")
    assert "leaves the repository" in str(refused.value)


@pytest.mark.parametrize("url", ["ftp://x/m.onnx", "s3://bucket/m.onnx", "javascript:alert(1)"])
def test_catalogue_urls_with_other_schemes_are_refused(url: str) -> None:
    from reconciler.service.compile import CompileError, resolve_artifact_url

    with pytest.raises(CompileError):
        resolve_artifact_url(url, "https://artifacts.example/fleet")


def test_an_absolute_file_url_in_the_catalogue_is_refused() -> None:
    """Issue 12: the catalogue may name repository files and https/oci URLs only; the
    contract refuses the rest before anything is signed (docs/security.md)."""
    from reconciler.service.compile import CompileError, resolve_artifact_url

    with pytest.raises(CompileError, match="absolute path on the publishing machine"):
        resolve_artifact_url("file:///etc/shadow", "https://a.example")
