"""TLS: a generated broker config with only a TLS listener; publish over mqtts://."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from linefleet.cli import main
from linefleet_core.errors import TemporaryError
from linefleet_core.mqtturl import BrokerAddress
from linefleet_core.signing import SigningKey
from reconciler.mqtt import retained_snapshot
from tests.support.mosquitto import Mosquitto, free_port

pytestmark = pytest.mark.integration


def write_pki(folder: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1."""
    folder.mkdir(parents=True)
    now = dt.datetime.now(dt.UTC)

    def cert(
        subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None, signer: object
    ) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
        )
        if issuer is None:
            builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
        else:
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            builder = builder.add_extension(san, False)
        return builder.sign(signer, hashes.SHA256())  # type: ignore[arg-type]

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert("linefleet test CA", ca_key, None, ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = cert("127.0.0.1", server_key, ca.subject, ca_key)
    pem = serialization.Encoding.PEM
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(server.public_bytes(pem))
    paths[2].write_bytes(
        server_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


def test_publish_over_tls(
    fleet_repo: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ca, server_cert, server_key = write_pki(tmp_path / "pki")
    port = free_port()
    out = tmp_path / "cfg"
    argv = ["broker", "config", "--out", str(out), "--repo", str(fleet_repo), "--port", "0"]
    argv += ["--bind", "127.0.0.1", "--data-dir", str(tmp_path / "data")]
    argv += ["--tls-cert", str(server_cert), "--tls-key", str(server_key)]
    argv += ["--tls-port", str(port)]
    assert main(argv) == 0
    (tmp_path / "data").mkdir()
    creds = json.loads((out / "credentials.json").read_text())
    broker = Mosquitto(tmp_path / "run", port=port, config=(out / "mosquitto.conf").read_text())
    broker.start()
    try:
        key_dir = tmp_path / "keys"
        private, _ = SigningKey.generate().write(key_dir)
        user, password = "linefleet-reconciler", creds["linefleet-reconciler"]
        url = f"mqtts://{user}:{password}@127.0.0.1:{port}"
        monkeypatch.setenv("LINEFLEET_MQTT_CA", str(ca))
        capsys.readouterr()
        publish = ["publish", "--broker", url, "--repo", str(fleet_repo)]
        assert main([*publish, "--signing-key", str(private), "--format", "json"]) == 0
        assert json.loads(capsys.readouterr().out)["published"] == 3

        plain = BrokerAddress.parse(f"mqtt://{user}:{password}@127.0.0.1:{port}")
        with pytest.raises(TemporaryError):
            retained_snapshot(plain, "linefleet/v1/#", "linefleet-test-plain", timeout=2.0)
        monkeypatch.delenv("LINEFLEET_MQTT_CA")  # the system CAs do not know our test CA
        assert main([*publish, "--signing-key", str(private)]) == 1
        assert "TLS certificate not trusted" in capsys.readouterr().err
    finally:
        broker.stop()
