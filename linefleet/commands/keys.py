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
