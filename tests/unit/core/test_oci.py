"""`oci://` references, the mirror rewrite at compile time, validate's oci and mirror checks."""

from __future__ import annotations

from typing import Any

import pytest

from linefleet_core.oci import OciError, load_credentials, parse_ref, registry_base
from reconciler.compile import CompileError, compile_fleet, resolve_artifact_url
from reconciler.mirror import MirrorOptions, config_text, site_artifacts, upstream_of
from tests.support import minifleet

HEX = "ab" * 32


@pytest.mark.parametrize(
    ("url", "host", "repo"),
    [
        (
            f"oci://registry.example/models/surface@sha256:{HEX}",
            "registry.example",
            "models/surface",
        ),
        (f"oci://127.0.0.1:5000/m@sha256:{HEX}", "127.0.0.1:5000", "m"),
        (f"oci://[::1]:5000/a/b-c/d_e@sha256:{HEX}", "[::1]:5000", "a/b-c/d_e"),
    ],
)
def test_references_parse(url: str, host: str, repo: str) -> None:
    ref = parse_ref(url)
    assert (ref.host, ref.repo, ref.sha256, str(ref)) == (host, repo, HEX, url)


@pytest.mark.parametrize(
    "url",
    [
        f"oci://registry.example/Models@sha256:{HEX}",  # upper-case repository
        f"oci://registry.example/models@sha256:{HEX[:-1]}",  # 63 digits
        f"oci://registry.example/models:v1@sha256:{HEX}",  # a tag is not a digest
        "oci://registry.example/models:v1",
        f"oci://registry.example@sha256:{HEX}",  # no repository
        f"oci://user:pw@registry.example/models@sha256:{HEX}",  # credentials in the URL
        f"https://registry.example/models@sha256:{HEX}",
    ],
)
def test_malformed_references_are_refused(url: str) -> None:
    with pytest.raises(OciError, match="not an OCI reference"):
        parse_ref(url)


def test_loopback_registries_speak_http_others_https() -> None:
    assert registry_base("127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert registry_base("localhost") == "http://localhost"
    assert registry_base("[::1]:5000") == "http://[::1]:5000"
    assert registry_base("registry.example:5000") == "https://registry.example:5000"


def test_compile_points_oci_urls_at_the_sites_mirror() -> None:
    url = f"oci://central.example/models/s@sha256:{HEX}"
    assert resolve_artifact_url(url, "file:///x") == url
    mirrored = resolve_artifact_url(url, "file:///x", "mirror.toledo:5000")
    assert mirrored == f"oci://mirror.toledo:5000/models/s@sha256:{HEX}"
    with pytest.raises(CompileError, match="not an OCI reference"):
        resolve_artifact_url("oci://central.example/models/s:latest", "file:///x")


def _registry_docs(mirrors: dict[str, str]) -> dict[str, Any]:
    docs = minifleet.documents()
    for doc in docs.values():
        if doc.get("kind") == "Model":
            for version in doc["versions"]:
                sha = version["artifact"]["sha256"]
                version["artifact"]["url"] = f"oci://central.example/models/surface@sha256:{sha}"
        if doc.get("kind") == "Site" and doc["id"] in mirrors:
            doc["artifact_mirror"] = mirrors[doc["id"]]
    return docs


def test_each_sites_devices_get_their_own_mirror_and_others_the_centre() -> None:
    spec, findings = minifleet.load_docs(_registry_docs({"toledo": "mirror.toledo:5000"}))
    assert [f for f in findings if f.severity.value == "error"] == []
    docs = compile_fleet(spec, "a" * 40, 1, "file:///x")
    hosts = {
        device: {parse_ref(line.serving.artifact.url).host for line in doc.spec.lines}
        for device, doc in docs.items()
    }
    assert hosts["toledo-edge-1"] == {"mirror.toledo:5000"}
    assert hosts["dresden-edge-1"] == {"central.example"}
    assert upstream_of(spec) == "central.example"
    assert {r.host for r in site_artifacts(spec, "toledo")} == {"central.example"}
    config = config_text(MirrorOptions("0.0.0.0:5000", "/var/lib/m", "central.example"))
    assert "remoteurl: https://central.example\n" in config
    assert "addr: 0.0.0.0:5000\n" in config


def test_validate_locates_a_digest_that_is_not_the_sha256_and_a_mirror_of_two_registries() -> None:
    docs = _registry_docs({"toledo": "mirror.toledo:5000"})
    model = next(d for d in docs.values() if d.get("kind") == "Model")
    first = model["versions"][0]["artifact"]
    first["url"] = f"oci://other.example/models/surface@sha256:{HEX}"
    _, findings = minifleet.load_docs(docs)
    messages = {(f.field, f.message.split(":")[0]) for f in findings}
    assert ("versions[0].artifact.sha256", "the url's digest sha256") in messages
    site = [f for f in findings if f.field == "artifact_mirror"]
    assert site and "names 2 (central.example, other.example)" in site[0].message
    first["url"] = "oci://other.example/Models@sha256:zz"
    _, findings = minifleet.load_docs(docs)
    assert any(
        f.field == "versions[0].artifact.url" and "not an OCI reference" in f.message
        for f in findings
    )


def test_device_credentials_file_is_checked(tmp_path: Any) -> None:
    good = tmp_path / "good.json"
    good.write_text(
        '{"mirror:5000": {"token": "t"}, "r.example": {"username": "u", "password": "p"}}'
    )
    creds = load_credentials(good)
    assert creds["mirror:5000"].header() == "Bearer t"
    assert creds["r.example"].header() == "Basic dTpw"
    bad = tmp_path / "bad.json"
    bad.write_text('{"mirror:5000": {"password": "p"}}')
    with pytest.raises(OciError, match="give a token, or a username and password"):
        load_credentials(bad)
