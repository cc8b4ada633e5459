"""A throw-away certificate authority and a server certificate for TLS tests.

    ca, server_cert, server_key = write_pki(tmp_path / "pki")

The server certificate names `127.0.0.1` and `localhost` (subject alternative names), is
signed by the CA, and is valid from five minutes ago for one day. Keys are P-256, PEM files.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name | None,
    signer: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
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
        names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), False)
    return builder.sign(signer, hashes.SHA256())


def write_pki(folder: Path) -> tuple[Path, Path, Path]:
    """Write `ca.pem`, `server.pem` and `server.key` into FOLDER; return their paths. Also
    `client.pem` and `client.key`: a client certificate from the same CA."""
    folder.mkdir(parents=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("linefleet test CA", ca_key, None, ca_key)
    ca_path = folder / "ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for name in ("client", "server"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate("127.0.0.1", key, ca.subject, ca_key)
        _write_pair(folder, name, cert, key)
    return ca_path, folder / "server.pem", folder / "server.key"


def _write_pair(
    folder: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> None:
    pem = serialization.Encoding.PEM
    (folder / f"{name}.pem").write_bytes(cert.public_bytes(pem))
    (folder / f"{name}.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
