"""`linefleet keys`: the Ed25519 pair that signs desired states (`generate`, `show`), and a
fleet CA issuing per-device TLS client certificates and broker certificates (`ca`, `cert`)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from linefleet_core.errors import ExitCode


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("keys", help="manage the Ed25519 keys that sign desired states")
    actions = p.add_subparsers(dest="keys_action", metavar="ACTION", required=True)
    gen = actions.add_parser(
        "generate",
        help="write signing.key (private, 0600) and <key_id>.pub (install on devices)",
        description="Generate an Ed25519 key pair. Refuses to overwrite an existing signing.key.",
    )
    gen.add_argument("--out", type=Path, required=True, help="folder for the key files")
    gen.add_argument("--format", choices=("text", "json"), default="text")
    gen.set_defaults(run=run_generate)
    show = actions.add_parser(
        "show",
        help="print the key_id of a public (.pub) or private key file",
        description="Print the key_id devices pin for a key (handy during key rotation).",
    )
    show.add_argument("file", type=Path)
    show.set_defaults(run=run_show)
    dev = actions.add_parser(
        "device",
        help="per-device Ed25519 keys that sign reports and events: <id>.key (0600, for "
        "`edge run --device-key`) and <id>.pub (for `reconcile/status --device-keys`)",
    )
    dev.add_argument("names", nargs="*", metavar="DEVICE")
    dev.add_argument("--out", type=Path, required=True)
    dev.add_argument("--repo", type=Path, help="one for every device of this fleet")
    dev.set_defaults(run=run_device)
    ca = actions.add_parser(
        "ca",
        help="create a fleet certificate authority: ca.pem (give to the broker) and ca.key (0600)",
        description="The CA that issues device client certificates for `broker config --tls`.",
    )
    ca.add_argument("--out", type=Path, required=True)
    ca.add_argument("--name", default="linefleet fleet CA", help="the CA's common name")
    ca.set_defaults(run=run_ca)
    cert = actions.add_parser(
        "cert",
        help="issue <name>.pem and <name>.key (0600) from the fleet CA",
        description=(
            "A client certificate per device (common name = device id: its broker account "
            "with `broker config --tls`), or with --server a broker certificate for --host."
        ),
    )
    cert.add_argument("names", nargs="*", metavar="NAME", help="device ids (or the broker name)")
    cert.add_argument("--ca", type=Path, required=True, help="folder with ca.pem and ca.key")
    cert.add_argument("--out", type=Path, required=True)
    cert.add_argument("--repo", type=Path, help="issue one for every device of this fleet")
    cert.add_argument("--server", action="store_true", help="a broker (server) certificate")
    cert.add_argument("--host", action="append", default=[], help="with --server: a DNS name or IP")
    cert.add_argument(
        "--peer",
        action="store_true",
        help="with --server: a node of a broker cluster, whose certificate also opens its "
        "routes to the other nodes (client use too)",
    )
    cert.set_defaults(run=run_cert)


def run_generate(ns: argparse.Namespace) -> int:
    from linefleet_core.signing import SigningKey

    key = SigningKey.generate()
    private, public = key.write(ns.out)
    if ns.format == "json":
        out = {"key_id": key.key_id, "private_key": str(private), "public_key": str(public)}
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"key_id {key.key_id}")
        print(f"private key: {private} (keep it on the reconciler; never commit it)")
        print(f"public key:  {public} (pin it on every device)")
    return int(ExitCode.OK)


def run_show(ns: argparse.Namespace) -> int:
    from linefleet_core.errors import UsageError
    from linefleet_core.signing import SigningKey, key_id, load_public_key

    try:
        pem = ns.file.read_bytes()
    except OSError as exc:
        raise UsageError(f"{ns.file}: {exc.strerror}") from None
    if b"PRIVATE KEY" in pem:
        print(f"{SigningKey.from_pem(pem, str(ns.file)).key_id} (private key)")
    else:
        print(f"{key_id(load_public_key(pem, str(ns.file)))} (public key)")
    return int(ExitCode.OK)


def run_ca(ns: argparse.Namespace) -> int:
    from linefleet_core import pki

    cert, key = pki.write_pair(ns.out, "ca", pki.new_ca(ns.name))
    print(f"CA certificate: {cert} (the broker's --tls-ca; devices trust the broker with it)")
    print(f"CA key:         {key} (keep it offline; it can issue any device's identity)")
    return int(ExitCode.OK)


def run_cert(ns: argparse.Namespace) -> int:
    from linefleet_core import pki
    from linefleet_core.errors import UsageError
    from linefleet_core.refs import ID_PATTERN

    names = list(ns.names)
    if ns.repo is not None:
        from linefleet_core import spec as fleetspec

        spec, _ = fleetspec.load(fleetspec.DirectorySource(ns.repo))
        names += sorted(d.id for d in spec.devices.values())
    if not names:
        raise UsageError("name at least one device (or pass --repo for every device)")
    if ns.server and not ns.host:
        raise UsageError("--server needs at least one --host")
    if ns.host and not ns.server:
        raise UsageError("--host goes with --server")
    if ns.peer and not ns.server:
        raise UsageError("--peer goes with --server (a cluster node's certificate)")
    for name in names:
        if not ns.server and not re.fullmatch(ID_PATTERN, name):
            raise UsageError(f"{name!r}: not a device id (lowercase letters, digits, '-')")
    authority = pki.Authority.load(ns.ca)
    for name in names:
        cert, key = pki.write_pair(ns.out, name, authority.issue(name, hosts=ns.host, peer=ns.peer))
        print(f"{name}: {cert} {key}")
    return int(ExitCode.OK)


def run_device(ns: argparse.Namespace) -> int:
    from linefleet_core.errors import UsageError
    from linefleet_core.refs import ID_PATTERN
    from linefleet_core.signing import SigningKey

    names = list(ns.names)
    if ns.repo is not None:
        from linefleet_core import spec as fleetspec

        spec, _ = fleetspec.load(fleetspec.DirectorySource(ns.repo))
        names += sorted(d.id for d in spec.devices.values())
    if not names:
        raise UsageError("name at least one device (or pass --repo for every device)")
    for name in names:
        if not re.fullmatch(ID_PATTERN, name):
            raise UsageError(f"{name!r}: not a device id (lowercase letters, digits, '-')")
    for name in names:
        private, public = SigningKey.generate().write_device(ns.out, name)
        print(f"{name}: {private} (on the device) {public} (for the reconciler)")
    return int(ExitCode.OK)
