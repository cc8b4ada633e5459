"""Models through a real OCI registry (Debian's `docker-registry`): push, fetch by digest with
resume, device credentials, and two sites converging through their own pull-through mirrors.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_puller.artifacts import ArtifactError, ArtifactStore
from edge_puller.runner import RunOptions, run
from linefleet.cli import main
from linefleet_core.errors import TemporaryError
from linefleet_core.mqtturl import BrokerAddress
from linefleet_core.oci import Credentials, parse_ref, push_file
from linefleet_core.signing import load_trusted_keys
from tests.support import minifleet
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.registry import Registry
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

DATA = os.urandom(600_000)
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def central(tmp_path: Path) -> Iterator[Registry]:
    with Registry(tmp_path / "central") as reg:
        yield reg


def test_push_prints_the_catalogue_entry_and_a_second_push_sends_nothing(
    tmp_path: Path, central: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(DATA)
    to = f"oci://{central.address}/models/surface"
    assert main(["artifacts", "push", str(model), "--to", to, "--tag", "v1"]) == 0
    out = capsys.readouterr().out
    assert out == (f"artifact:\n  url: {to}@sha256:{SHA}\n  sha256: {SHA}\n  size: {len(DATA)}\n")
    assert main(["artifacts", "push", str(model), "--to", to, "--format", "json"]) == 0
    entry = json.loads(capsys.readouterr().out)["artifact"]
    assert entry == {"url": f"{to}@sha256:{SHA}", "sha256": SHA, "size": len(DATA)}
    uploads = [r for r in central.requests() if r["http.request.method"] == "PUT"]
    blob_puts = [r for r in uploads if "/blobs/uploads/" in r["http.request.uri"]]
    assert len(blob_puts) == 2  # the model and the empty config, once each
    tagged = [r for r in uploads if r["http.request.uri"].endswith("/manifests/v1")]
    assert len(tagged) == 1


def test_push_to_a_malformed_target_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(DATA)
    assert main(["artifacts", "push", str(model), "--to", "https://x/models"]) == 2
    assert "expected oci://HOST[:PORT]/REPO" in capsys.readouterr().err


def test_the_device_fetches_by_digest_and_resumes_with_range(
    tmp_path: Path, central: Registry
) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(DATA)
    ref = push_file(model, f"oci://{central.address}/models/surface").ref
    store = ArtifactStore(tmp_path / "store", reserve_bytes=0)
    store.part_path(SHA).write_bytes(DATA[:250_000])  # a download cut off earlier
    store.download(str(ref), SHA, len(DATA))
    store.verify(SHA, len(DATA), resumed=True)
    assert store.path(SHA).read_bytes() == DATA
    gets = [r for r in central.requests() if "/blobs/sha256:" in r["http.request.uri"]]
    fetched = [r for r in gets if r["http.request.method"] == "GET"]
    assert [(r["http.response.status"], r["http.response.written"]) for r in fetched] == [
        (206, len(DATA) - 250_000)
    ]


def test_a_url_whose_digest_is_not_the_documents_sha256_is_refused(
    tmp_path: Path, central: Registry
) -> None:
    store = ArtifactStore(tmp_path / "store", reserve_bytes=0)
    other = "e" * 64
    with pytest.raises(ArtifactError) as err:
        store.download(f"oci://{central.address}/models/surface@sha256:{other}", SHA, 10)
    assert err.value.reason == "bad-url"
    with pytest.raises(ArtifactError) as missing:  # a digest the registry never had
        store.download(f"oci://{central.address}/models/surface@sha256:{SHA}", SHA, 10)
    assert missing.value.reason == "not-found"


def test_read_credentials_come_from_the_device_not_the_document(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # bcrypt for the registry's htpasswd (gone in 3.13; we run 3.11)

        hashed = crypt.crypt("s3cret", crypt.mksalt(crypt.METHOD_BLOWFISH))
    (tmp_path / "htpasswd").write_text(f"reader:{hashed}\n", encoding="utf-8")
    port = free_port()
    config = (
        "version: 0.1\nlog:\n  formatter: json\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path}/data\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
        f"auth:\n  htpasswd:\n    realm: linefleet\n    path: {tmp_path}/htpasswd\n"
    )
    model = tmp_path / "m.onnx"
    model.write_bytes(DATA)
    with Registry(tmp_path / "reg", port=port, config=config) as reg:
        creds = Credentials("reader", "s3cret")
        url = str(push_file(model, f"oci://{reg.address}/models/s", credentials=creds).ref)
        anonymous = ArtifactStore(tmp_path / "anon", reserve_bytes=0)
        with pytest.raises(TemporaryError, match="registry credentials"):
            anonymous.download(url, SHA, len(DATA))
        (tmp_path / "creds.json").write_text(
            json.dumps({reg.address: {"username": "reader", "password": "s3cret"}}),
            encoding="utf-8",
        )
        from linefleet_core.oci import load_credentials

        store = ArtifactStore(
            tmp_path / "dev",
            reserve_bytes=0,
            credentials=load_credentials(tmp_path / "creds.json"),
        )
        store.download(url, SHA, len(DATA))
        store.verify(SHA, len(DATA), resumed=False)
    assert "s3cret" not in url and "reader" not in url


def _mirror(tmp_path: Path, root: Path, site: str, capsys: pytest.CaptureFixture[str]) -> Registry:
    config = tmp_path / f"mirror-{site}.yml"
    code = main(
        [
            "mirror",
            "config",
            "--site",
            site,
            "--repo",
            str(root),
            "--out",
            str(config),
            "--data-dir",
            str(tmp_path / f"mirror-{site}-data"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    text = config.read_text(encoding="utf-8")
    port = int(text.split("addr: 127.0.0.1:")[1].split()[0])
    return Registry(tmp_path / f"mirror-{site}", port=port, config=text)


def test_two_sites_converge_through_their_own_mirrors_never_the_central_registry(
    tmp_path: Path, central: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "fleet"
    minifleet.write_minifleet(root)
    minifleet.use_registry_artifacts(root, central.address)
    mirrors = {"toledo": f"127.0.0.1:{free_port()}", "dresden": f"127.0.0.1:{free_port()}"}
    for site, address in mirrors.items():
        minifleet.set_mirror(root, site, address)
    minifleet.init_repo(root)
    minifleet.commit_all(root, "models in the registry, one mirror per site")
    assert not (root / "artifacts").exists()  # git holds YAML only
    assert main(["validate", "--repo", str(root)]) == 0
    capsys.readouterr()
    assert main(["keys", "generate", "--out", str(tmp_path / "keys"), "--format", "json"]) == 0
    keys = json.loads(capsys.readouterr().out)
    running = [_mirror(tmp_path, root, site, capsys).start() for site in mirrors]
    assert main(["mirror", "warm", "--site", "toledo", "--repo", str(root)]) == 0
    warmed = capsys.readouterr().out
    assert f"site toledo: 3 model(s) in mirror {mirrors['toledo']}" in warmed
    assert warmed.count(": stored (") == 3
    stop = threading.Event()
    threads = []
    try:
        with Mosquitto(tmp_path / "broker") as broker:
            publish = ["publish", "--broker", broker.url, "--repo", str(root)]
            signing = ["--signing-key", keys["private_key"], "--refuse-file-urls"]
            assert main([*publish, *signing]) == 0  # CI's flags: no file:// URL is signed
            capsys.readouterr()
            trusted = load_trusted_keys([Path(keys["public_key"])])
            for site, device in (
                ("toledo", "toledo-edge-1"),
                ("toledo", "toledo-edge-2"),
                ("dresden", "dresden-edge-1"),
            ):
                (tmp_path / device).mkdir()
                options = RunOptions(
                    site=site,
                    device=device,
                    broker=BrokerAddress.parse(broker.url),
                    state_dir=tmp_path / device / "state",
                    frames=str(tmp_path / device),
                    trusted_keys=trusted,
                    results=tmp_path / device / "results.jsonl",
                )
                thread = threading.Thread(target=run, args=(options, stop), daemon=True)
                thread.start()
                threads.append(thread)

            def all_synced() -> bool:
                main(["status", "--broker", broker.url, "--repo", str(root), "--format", "json"])
                devices = json.loads(capsys.readouterr().out)["devices"]
                return len(devices) == 3 and all(d["condition"] == "Synced" for d in devices)

            wait_for("all three devices Synced", all_synced, timeout=40.0)
            for device, site in (("toledo-edge-1", "toledo"), ("dresden-edge-1", "dresden")):
                state = json.loads((tmp_path / device / "state" / "state.json").read_text())
                urls = {
                    m["artifact"]["url"]
                    for line in state["document"]["spec"]["lines"]
                    for m in (line["serving"], line["previous"] or line["serving"])
                }
                assert {parse_ref(u).host for u in urls} == {mirrors[site]}
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
        for mirror in running:
            mirror.stop()
    blob_gets = [
        r
        for r in central.requests()
        if r["http.request.method"] == "GET" and "/blobs/sha256:" in r["http.request.uri"]
    ]
    assert blob_gets, "the mirrors fetched from the central registry"
    agents = {r["http.request.useragent"].split("/")[0] for r in blob_gets}
    assert agents == {"Go-http-client"}  # only the mirrors (Distribution) asked the centre
    for mirror in running:
        served = [r for r in mirror.requests() if "/blobs/sha256:" in r["http.request.uri"]]
        asked = {r["http.request.useragent"].split("/")[0] for r in served}
        assert "Python-urllib" in asked  # the devices
        assert asked <= {"Python-urllib", "linefleet-mirror-warm"}


def test_ci_publish_refuses_file_urls_and_checks_the_registry(
    tmp_path: Path, central: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    import urllib.request

    local = tmp_path / "local"
    minifleet.write_minifleet(local)
    minifleet.use_real_artifacts(local)  # repository files: file:// URLs of this machine
    minifleet.init_repo(local)
    minifleet.commit_all(local, "models in git")
    assert main(["keys", "generate", "--out", str(tmp_path / "keys"), "--format", "json"]) == 0
    key = json.loads(capsys.readouterr().out)["private_key"]
    with Mosquitto(tmp_path / "broker") as broker:
        args = ["publish", "--broker", broker.url, "--repo", str(local), "--signing-key", key]
        assert main([*args, "--refuse-file-urls"]) == 1
        err = capsys.readouterr().err
        assert "only this machine can open" in err and "file://" in err
        assert main([*args, "--refuse-file-urls", "--dry-run", "--format", "json"]) == 1
        capsys.readouterr()

    root = tmp_path / "fleet"
    minifleet.write_minifleet(root)
    minifleet.use_registry_artifacts(root, central.address)
    minifleet.init_repo(root)
    minifleet.commit_all(root, "models in the registry")
    assert main(["artifacts", "check", "--repo", str(root)]) == 0
    assert "3 of 3 oci:// artifact(s) in their registry" in capsys.readouterr().out
    text = minifleet.model_file(root).read_text()
    url = next(w for w in text.split() if w.startswith("oci://"))
    ref = parse_ref(url)
    request = urllib.request.Request(
        f"http://{ref.host}/v2/{ref.repo}/blobs/sha256:{ref.sha256}", method="DELETE"
    )
    assert urllib.request.urlopen(request).status == 202
    assert main(["artifacts", "check", "--repo", str(root)]) == 1
    captured = capsys.readouterr()
    assert "missing: surface-classifier@" in captured.err and ref.sha256 in captured.err
