"""`linefleet keys generate --out DIR`: an Ed25519 pair for signing desired states."""

from __future__ import annotations

import argparse
import json
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
