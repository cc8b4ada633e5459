"""`linefleet broker config --out DIR`: Mosquitto config, ACL and passwords from the fleet."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from linefleet_core.errors import ExitCode, FindingsError, Severity, UsageError

CREDENTIALS = "credentials.json"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("broker", help="generate Mosquitto configuration for the fleet")
    actions = p.add_subparsers(dest="broker_action", metavar="ACTION", required=True)
    cfg = actions.add_parser(
        "config",
        help="write mosquitto.conf, acl, passwd and credentials.json (0600)",
        description=(
            "Each device gets an account named after its id that may read only its own "
            "desired topic and write only its own reported/events/online/frames topics; the "
            "reconciler gets its own account. Existing passwords in credentials.json are kept."
        ),
    )
    cfg.add_argument("--out", type=Path, required=True)
    cfg.add_argument("--repo", type=Path, default=Path(), help="fleet repository (default: .)")
    cfg.add_argument("--port", type=int, default=1883, help="plain listener; 0 disables it")
    cfg.add_argument("--bind", default="0.0.0.0")
    cfg.add_argument("--data-dir", default="/var/lib/mosquitto", help="persistence directory")
    cfg.add_argument("--tls-cert", help="server certificate (PEM): adds a TLS listener")
    cfg.add_argument("--tls-key", help="server private key (PEM)")
    cfg.add_argument("--tls-ca", help="CA file (PEM) for client certificates")
    cfg.add_argument("--tls-port", type=int, default=8883)
    cfg.add_argument("--require-client-cert", action="store_true")
    cfg.add_argument("--reconciler-user", default="linefleet-reconciler")
    cfg.add_argument("--format", choices=("text", "json"), default="text")
    cfg.set_defaults(run=run)


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    """Write through a temp file and rename, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    tmp.chmod(mode)
    tmp.replace(path)


def run(ns: argparse.Namespace) -> int:
    from linefleet_core import spec as fleetspec
    from reconciler import broker
    from reconciler.check import load_checked

    if not ns.repo.is_dir():
        raise UsageError(f"--repo {ns.repo}: no such directory")
    if bool(ns.tls_cert) != bool(ns.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    spec, findings = load_checked(fleetspec.DirectorySource(ns.repo))
    errors = [f for f in findings if f.severity is Severity.ERROR]
    if errors:
        raise FindingsError(errors)
    out: Path = ns.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    devices = [(d.site, d.id) for d in spec.devices.values()]
    existing: dict[str, str] = {}
    cred_path = out / CREDENTIALS
    if cred_path.is_file():
        try:
            existing = json.loads(cred_path.read_text(encoding="utf-8"))
        except ValueError:
            raise UsageError(f"{cred_path}: not JSON; move it away to regenerate") from None
    users = [ns.reconciler_user, *(device for _, device in devices)]
    creds = broker.credentials(users, existing)
    tls = None
    if ns.tls_cert:
        tls = broker.Tls(ns.tls_cert, ns.tls_key, ns.tls_ca, ns.tls_port, ns.require_client_cert)
    options = broker.BrokerOptions(str(out), ns.data_dir, ns.port or None, ns.bind, tls)
    _write(cred_path, json.dumps(creds, indent=2, sort_keys=True) + "\n", 0o600)
    _write(out / "passwd", broker.password_file(creds), 0o640)
    _write(out / "acl", broker.acl_text(devices, ns.reconciler_user))
    _write(out / "mosquitto.conf", broker.config_text(options))
    new = sorted(set(creds) - set(existing))
    summary = {
        "config": str(out / "mosquitto.conf"),
        "devices": len(devices),
        "accounts": len(creds),
        "new_accounts": new,
        "tls": tls is not None,
    }
    if ns.format == "json":
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"wrote {out}/mosquitto.conf, acl, passwd and {CREDENTIALS} (keep it secret)")
        print(f"{len(devices)} device account(s) + {ns.reconciler_user}; {len(new)} new")
    return int(ExitCode.OK)
