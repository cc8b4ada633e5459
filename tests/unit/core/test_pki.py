"""The fleet CA's certificates: what each may be used for."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from linefleet.cli import main
from linefleet_core import pki

SERVER, CLIENT = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH


def usages(pem: bytes) -> set[x509.ObjectIdentifier]:
    cert = x509.load_pem_x509_certificate(pem)
    return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> pki.Authority:
    folder = tmp_path_factory.mktemp("ca")
    pki.write_pair(folder, "ca", pki.new_ca("test CA"))
    return pki.Authority.load(folder)


def test_a_device_gets_a_client_certificate_a_broker_a_server_one_a_cluster_node_both(
    authority: pki.Authority,
) -> None:
    assert usages(authority.issue("toledo-edge-1").certificate) == {CLIENT}
    assert usages(authority.issue("broker", hosts=["10.0.0.5"]).certificate) == {SERVER}
    node = authority.issue("nats-1", hosts=["nats-1.plant"], peer=True).certificate
    assert usages(node) == {SERVER, CLIENT}
    assert usages(authority.issue("edge", peer=True).certificate) == {CLIENT}  # no host: a client


def test_peer_goes_with_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["keys", "cert", "--ca", str(tmp_path), "--out", str(tmp_path / "out"), "--peer", "n1"]
    assert main(argv) == 2
    assert "--peer goes with --server" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
