"""`linefleet validate --check-artifacts`: remote artifacts fetched and verified (issue 12).

A real HTTPS server on loopback with a throw-away CA (trusted through `SSL_CERT_FILE`, as an
operator with a private CA would), serving the catalogue's artifacts, an endless stream and
404s.
"""

from __future__ import annotations

import hashlib
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from linefleet.cli import main
from tests.support.pki import write_pki
from tests.unit.core.fleetdocs import MemorySource, artifact_bytes

pytestmark = pytest.mark.acceptance
MODELS = "fleet/models/surface-classifier.yaml"


class _Files(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        if self.path == "/endless.onnx":
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(64):
                    self.wfile.write(b"z" * 65536)
            except OSError:
                return
            return
        if self.path != "/v2.onnx":
            self.send_error(404)
            return
        body = artifact_bytes(2)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def https(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    ca, cert, key = write_pki(tmp_path / "pki")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _fleet(root: Path, url: str, sha256: str | None = None, size: int | None = None) -> Path:
    src = MemorySource()
    art = src.edit(MODELS)["versions"][1]["artifact"]
    art["url"] = url
    if sha256 is not None:
        art["sha256"] = sha256
    if size is not None:
        art["size"] = size
    return src.write(root)


def _validate(capsys: pytest.CaptureFixture[str], root: Path, *extra: str) -> tuple[int, str]:
    code = main(["validate", "--repo", str(root), *extra])
    return code, capsys.readouterr().out


def test_a_remote_artifact_that_matches_passes(
    tmp_path: Path, https: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _fleet(tmp_path, f"{https}/v2.onnx")
    assert _validate(capsys, root, "--check-artifacts")[0] == 0


def test_remote_artifacts_that_lie_are_refused_located(
    tmp_path: Path, https: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _fleet(tmp_path / "sha", f"{https}/v2.onnx", sha256="f" * 64)
    assert _validate(capsys, root)[0] == 0  # not fetched without the flag
    code, out = _validate(capsys, root, "--check-artifacts")
    assert code == 1
    assert f"{MODELS}:" in out and f"versions[1].artifact.sha256: {https}/v2.onnx has sha256" in out

    root = _fleet(tmp_path / "gone", f"{https}/gone.onnx")
    code, out = _validate(capsys, root, "--check-artifacts")
    assert code == 1 and "versions[1].artifact.url: " in out and "answered HTTP 404" in out

    endless = artifact_bytes(2)
    root = _fleet(tmp_path / "endless", f"{https}/endless.onnx")
    code, out = _validate(capsys, root, "--check-artifacts")
    assert code == 1
    assert f"is more than {len(endless):,} bytes; the catalogue says {len(endless):,}" in out


def test_an_untrusted_certificate_is_refused(
    tmp_path: Path, https: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE")
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))  # no system CAs either: nothing trusted
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "none.pem"))
    root = _fleet(tmp_path / "fleet", f"{https}/v2.onnx")
    code, out = _validate(capsys, root, "--check-artifacts")
    assert code == 1 and "could not be fetched" in out and "CERTIFICATE_VERIFY_FAILED" in out


def test_oci_artifacts_are_fetched_from_the_registry_and_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from linefleet_core.oci import push_bytes
    from tests.support.registry import Registry

    data = artifact_bytes(2)
    digest = hashlib.sha256(data).hexdigest()
    with Registry(tmp_path / "registry") as central:
        pushed = push_bytes(data, "v2.onnx", f"oci://{central.address}/models/surface-classifier")
        root = _fleet(tmp_path / "ok", str(pushed.ref), digest, len(data))
        assert _validate(capsys, root, "--check-artifacts")[0] == 0
        # the size the catalogue declares is not the blob's
        root = _fleet(tmp_path / "size", str(pushed.ref), digest, len(data) + 1)
        code, out = _validate(capsys, root, "--check-artifacts")
        assert code == 1 and "size" in out
        # a digest the registry does not hold
        other = hashlib.sha256(b"never pushed").hexdigest()
        missing = f"oci://{central.address}/models/surface-classifier@sha256:{other}"
        root = _fleet(tmp_path / "missing", missing, other, 12)
        code, out = _validate(capsys, root, "--check-artifacts")
        assert code == 1 and "HTTP 404" in out
    root = _fleet(tmp_path / "away", str(pushed.ref), digest, len(data))
    assert _validate(capsys, root)[0] == 0  # without the flag nothing is fetched
    code, out = _validate(capsys, root, "--check-artifacts")
    assert code == 1 and "could not be fetched" in out


def test_a_large_model_file_in_the_repository_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from linefleet_core.validation import REPO_ARTIFACT_WARN_BYTES
    from tests.support.onnx_models import build
    from tests.unit.core.fleetdocs import V2

    # version 2's classifier, padded with an unused initializer past the threshold
    big = build(classes=tuple(V2), height=64, width=64, pad_bytes=REPO_ARTIFACT_WARN_BYTES + 1)
    digest = hashlib.sha256(big).hexdigest()
    root = _fleet(tmp_path / "repo", "artifacts/big.onnx", digest, len(big))
    (root / "artifacts" / "big.onnx").write_bytes(big)
    code, out = _validate(capsys, root)
    assert code == 0
    assert "warning: versions[1].artifact.size: 10 MiB model file in the fleet repository" in out
    assert "linefleet artifacts push" in out
    # the same size in a registry is what the warning asks for: no warning
    url = f"https://models.example.test/{digest}.onnx"
    remote = _fleet(tmp_path / "remote", url, digest, len(big))
    code, out = _validate(capsys, remote)
    assert code == 0 and "fleet repository" not in out
