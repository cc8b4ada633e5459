"""A fleet certificate authority: per-device TLS client certificates and broker certificates.

`linefleet keys ca` creates the CA (`ca.pem`, `ca.key` 0600); `linefleet keys cert` issues
P-256 certificates signed by it: a client certificate whose common name is the device id
(the broker's account with `use_identity_as_username`, see `linefleet broker config --tls`),
or with `server=True` a broker certificate naming its hosts. Keys are written 0600 and never
overwritten.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from linefleet_core.errors import UsageError

CA_CERT = "ca.pem"
CA_KEY = "ca.key"
CA_DAYS = 3650
CERT_DAYS = 825


@dataclass(frozen=True)
class Issued:
    certificate: bytes  # PEM
    key: bytes  # PKCS#8 PEM, unencrypted


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def new_ca(common_name: str = "linefleet fleet CA", now: dt.datetime | None = None) -> Issued:
    moment = now or dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(moment - dt.timedelta(minutes=5))
        .not_valid_after(moment + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
        .sign(key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))


@dataclass(frozen=True)
class Authority:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def load(cls, folder: Path) -> Authority:
        try:
            cert = x509.load_pem_x509_certificate((folder / CA_CERT).read_bytes())
            key = serialization.load_pem_private_key((folder / CA_KEY).read_bytes(), None)
        except OSError as exc:
            raise UsageError(f"--ca {folder}: {exc.filename}: {exc.strerror}") from None
        except ValueError as exc:
            raise UsageError(f"--ca {folder}: not a PEM certificate and key ({exc})") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise UsageError(f"--ca {folder}: {CA_KEY} is not an EC private key")
        return cls(cert, key)

    def issue(
        self,
        common_name: str,
        *,
        hosts: Sequence[str] = (),
        peer: bool = False,
        now: dt.datetime | None = None,
    ) -> Issued:
        """A client certificate for `common_name`, or a server one naming `hosts`; with `peer`,
        a server one that is a client one too (a cluster node opening routes to the others)."""
        moment = now or dt.datetime.now(dt.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        usage = [ExtendedKeyUsageOID.SERVER_AUTH] if hosts else [ExtendedKeyUsageOID.CLIENT_AUTH]
        if hosts and peer:
            usage.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(moment - dt.timedelta(minutes=5))
            .not_valid_after(moment + dt.timedelta(days=CERT_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        )
        if hosts:
            names: list[x509.GeneralName] = []
            for host in hosts:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(host)))
                except ValueError:
                    names.append(x509.DNSName(host))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return Issued(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))


def write_pair(folder: Path, stem: str, issued: Issued) -> tuple[Path, Path]:
    """`<stem>.pem` and `<stem>.key` (0600); refuse to overwrite an existing key."""
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / f"{stem}.pem", folder / f"{stem}.key"
    try:
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"{key_path} exists; refusing to overwrite a key") from None
    with os.fdopen(fd, "wb") as out:
        out.write(issued.key)
    cert_path.write_bytes(issued.certificate)
    return cert_path, key_path
