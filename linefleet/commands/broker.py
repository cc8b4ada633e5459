"""`linefleet broker config --out DIR`: broker config, accounts and ACLs from the fleet (Mosquitto,
NATS or RabbitMQ)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from linefleet_core.errors import ExitCode, FindingsError, Severity, UsageError, need_directory

if TYPE_CHECKING:
    from reconciler.broker import Tls

CREDENTIALS = "credentials.json"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "broker", help="generate broker configuration for the fleet (Mosquitto, NATS, RabbitMQ)"
    )
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
    cfg.add_argument(
        "--tls",
        action="store_true",
        help="devices authenticate with a certificate from the fleet CA (--tls-ca; issue them "
        "with `linefleet keys cert`): require_certificate + use_identity_as_username on "
        "--tls-port; the reconciler and bridges use their passwords on --operator-port",
    )
    cfg.add_argument("--operator-port", type=int, default=8884, help="with --tls (default 8884)")
    cfg.add_argument(
        "--dynsec-plugin",
        help="path of Mosquitto's mosquitto_dynamic_security.so, which binds each device's "
        "client id to its account (default: found under /usr/lib)",
    )
    cfg.add_argument(
        "--broker-user",
        default="mosquitto",
        help="the user Mosquitto drops to when started as root (default: mosquitto); run as "
        "root, this command gives that user's group read access to the files and the "
        "persistence directory",
    )
    cfg.add_argument("--reconciler-user", default="linefleet-reconciler")
    cfg.add_argument("--site", help="generate a site broker for SITE, bridged to --central")
    cfg.add_argument("--central", help="the central broker a site broker bridges to (mqtt://)")
    cfg.add_argument(
        "--credentials",
        type=Path,
        help="credentials.json to reuse (default: OUT/credentials.json; for --site: the "
        "central broker's, so devices and the bridge share its passwords)",
    )
    cfg.add_argument(
        "--engine",
        choices=("mosquitto", "nats", "rabbitmq"),
        default="mosquitto",
        help="nats: one nats.conf for a NATS server's MQTT gateway (JetStream in --data-dir), "
        "the same accounts and topic rules as NATS permissions; rabbitmq: rabbitmq.conf and "
        "definitions.json for a RabbitMQ node with rabbitmq_mqtt, the rules as topic "
        "permissions (docs/protocol.md, 14); both take --tls-cert/--tls-key/--tls-ca/"
        "--tls-port/--require-client-cert (NATS: its one MQTT listener, with --port 0); "
        "neither: site bridges, --tls (certificate accounts), client-id binding",
    )
    cfg.add_argument(
        "--nats-port", type=int, default=4222, help="with --engine nats: NATS's own port"
    )
    cfg.add_argument(
        "--server-name", help="with --engine nats: this node's name (unique in a cluster)"
    )
    cfg.add_argument(
        "--cluster-listen",
        metavar="HOST:PORT",
        help="with --engine nats: a cluster node; where it takes the other nodes' routes",
    )
    cfg.add_argument(
        "--routes",
        metavar="HOST:PORT,...",
        help="with --engine nats: the other nodes' --cluster-listen addresses",
    )
    cfg.add_argument(
        "--replicas",
        type=int,
        help="with --engine nats: copies of the MQTT streams and consumers (default: the "
        "cluster's nodes, at most 3)",
    )
    cfg.add_argument(
        "--amqp-port", type=int, default=5672, help="with --engine rabbitmq: AMQP's own port"
    )
    cfg.add_argument("--format", choices=("text", "json"), default="text")
    cfg.set_defaults(run=run)


def _write(path: Path, text: str, mode: int = 0o644, group: int | None = None) -> None:
    """Write through a temp file and rename, so a reader never sees half a file; `group`
    (root only) becomes the file's group, so the broker's user can read a 0640 file."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    if group is not None:
        os.chown(tmp, 0, group)
    tmp.chmod(mode)
    tmp.replace(path)


def find_dynsec_plugin() -> str | None:
    from reconciler.broker import DYNSEC_PLUGIN

    for folder in ("/usr/lib", "/usr/local/lib", "/usr/lib64"):
        found = [*sorted(Path(folder).glob(f"*/{DYNSEC_PLUGIN}")), Path(folder) / DYNSEC_PLUGIN]
        for path in found:
            if path.is_file():
                return str(path)
    return None


def _broker_ids(user: str | None) -> tuple[int, int] | None:
    """(uid, gid) of the broker's user when this runs as root and that user exists."""
    import pwd

    if user is None or os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def _prepare_data_dir(path: Path, ids: tuple[int, int] | None) -> None:
    """The persistence directory must exist and be writable by the broker's user."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        if ids is not None:
            os.chown(path, *ids)
            path.chmod(0o750)
    except OSError as exc:
        raise UsageError(f"--data-dir {path}: {exc.strerror}") from None


def _read_credentials(path: Path) -> dict[str, str]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None
    except ValueError:
        raise UsageError(f"{path}: not JSON; move it away to regenerate") from None
    if not isinstance(doc, dict) or not all(isinstance(v, str) for v in doc.values()):
        raise UsageError(f"{path}: expected an object of user -> password")
    return doc


def _accounts(
    ns: argparse.Namespace, engine: str, extra: list[str] | None = None
) -> tuple[Path, Path, list[tuple[str, str]], dict[str, str], list[str]]:
    """For an engine other than Mosquitto: (out folder, credentials file, devices, every
    account's password, the new accounts), credentials.json written (0600)."""
    from linefleet_core import spec as fleetspec
    from linefleet_core.validation import load_checked
    from reconciler import broker

    unsupported = [
        flag
        for flag, value in (
            ("--site", ns.site),
            ("--central", ns.central),
            ("--tls", ns.tls),
            ("--dynsec-plugin", ns.dynsec_plugin),
        )
        if value
    ]
    if unsupported:
        raise UsageError(
            f"--engine {engine}: {', '.join(unsupported)} not supported (Mosquitto only)"
        )
    if not ns.port and not ns.tls_cert:
        raise UsageError(f"--engine {engine} needs --port or --tls-cert (an MQTT listener)")
    spec, findings = load_checked(fleetspec.DirectorySource(ns.repo))
    errors = [f for f in findings if f.severity is Severity.ERROR]
    if errors:
        raise FindingsError(errors)
    out: Path = ns.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    devices = [(d.site, d.id) for d in spec.devices.values()]
    cred_path: Path = ns.credentials or out / CREDENTIALS
    existing = _read_credentials(cred_path) if cred_path.is_file() else {}
    users = [ns.reconciler_user, *(d for _, d in devices), *(extra or [])]
    creds = broker.credentials(users, existing)
    _write(cred_path, json.dumps(creds, indent=2, sort_keys=True) + "\n", 0o600)
    return out, cred_path, devices, creds, sorted(set(creds) - set(existing))


def _summary(
    ns: argparse.Namespace,
    engine: str,
    files: dict[str, str],
    wrote: str,
    devices: int,
    creds: dict[str, str],
    new: list[str],
) -> None:
    """What an engine other than Mosquitto wrote: JSON (`files` and counts) or two lines."""
    if ns.format == "json":
        summary = {
            **files,
            "engine": engine,
            "devices": devices,
            "accounts": len(creds),
            "new_accounts": new,
        }
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"wrote {wrote}")
        print(f"{len(creds)} account(s) ({devices} devices); {len(new)} new")


def _server_tls(ns: argparse.Namespace) -> Tls | None:
    """The TLS listener of an engine other than Mosquitto (`--tls-cert`, `--tls-key`, optional
    `--tls-ca`, `--tls-port`, `--require-client-cert`)."""
    from reconciler import broker

    if not ns.tls_cert:
        if ns.require_client_cert:
            raise UsageError("--require-client-cert needs --tls-cert, --tls-key and --tls-ca")
        return None
    if ns.require_client_cert and not ns.tls_ca:
        raise UsageError(
            "--require-client-cert needs --tls-ca (the CA of the clients' certificates)"
        )
    return broker.Tls(
        ns.tls_cert, ns.tls_key, ns.tls_ca, ns.tls_port, require_certificate=ns.require_client_cert
    )


def _rabbitmq(ns: argparse.Namespace) -> int:
    """`--engine rabbitmq`: rabbitmq.conf, definitions.json (0600: password hashes) and
    credentials.json."""
    from reconciler import broker

    tls = _server_tls(ns)
    out, cred_path, devices, creds, new = _accounts(ns, "rabbitmq")
    definitions = out / broker.RABBITMQ_DEFINITIONS
    text = broker.rabbitmq_definitions(devices, creds, ns.reconciler_user)
    _write(definitions, text, 0o600)
    options = broker.RabbitOptions(str(definitions), ns.port, ns.bind, ns.amqp_port, tls)
    _write(out / broker.RABBITMQ_CONF, broker.rabbitmq_conf(options), 0o644)
    files = {"config": str(out / broker.RABBITMQ_CONF), "definitions": str(definitions)}
    wrote = (
        f"{out}/{broker.RABBITMQ_CONF}, {definitions} and {cred_path} (keep the last two secret)"
    )
    _summary(ns, "rabbitmq", files, wrote, len(devices), creds, new)
    return int(ExitCode.OK)


def _nats(ns: argparse.Namespace) -> int:
    """`--engine nats`: nats.conf (0600: it holds the passwords) and credentials.json."""
    from reconciler import broker

    routes = tuple(r for r in (ns.routes or "").split(",") if r)
    if bool(routes) != bool(ns.cluster_listen) or (routes and not ns.server_name):
        raise UsageError(
            "a NATS cluster node needs --server-name (unique per node), --cluster-listen "
            "HOST:PORT and --routes HOST:PORT,... (the other nodes)"
        )
    tls = _server_tls(ns)
    if tls is not None and ns.port:
        raise UsageError(
            "--engine nats: NATS has one MQTT listener; with --tls-cert it is the TLS one on "
            "--tls-port: pass --port 0"
        )
    if tls is not None and routes and tls.cafile is None:
        raise UsageError(
            "--engine nats: a cluster with --tls-cert runs its routes over mutual TLS, and "
            "needs --tls-ca (the CA the nodes verify each other with; their certificates come "
            "from `linefleet keys cert --peer`)"
        )
    extra = [broker.NATS_ROUTE_USER] if routes else []
    out, cred_path, devices, creds, new = _accounts(ns, "nats", extra)
    replicas = ns.replicas or min(3, len(routes) + 1)
    if replicas > len(routes) + 1:
        raise UsageError(f"--replicas {replicas}: more than the cluster's {len(routes) + 1} nodes")
    options = broker.NatsOptions(
        ns.data_dir,
        ns.port,
        ns.bind,
        ns.nats_port,
        ns.server_name or "linefleet",
        ns.cluster_listen,
        routes,
        replicas,
        tls,
    )
    _write(
        out / broker.NATS_CONF, broker.nats_text(options, devices, creds, ns.reconciler_user), 0o600
    )
    files = {"config": str(out / broker.NATS_CONF)}
    wrote = f"{out}/{broker.NATS_CONF} and {cred_path} (keep both secret)"
    _summary(ns, "nats", files, wrote, len(devices), creds, new)
    return int(ExitCode.OK)


def run(ns: argparse.Namespace) -> int:
    from linefleet_core import spec as fleetspec
    from linefleet_core.mqtturl import BrokerAddress
    from linefleet_core.validation import load_checked
    from reconciler import broker

    need_directory("--repo", ns.repo)
    if bool(ns.tls_cert) != bool(ns.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    if ns.tls and not (ns.tls_cert and ns.tls_ca):
        raise UsageError("--tls needs --tls-cert, --tls-key and --tls-ca (the fleet CA)")
    if ns.engine == "nats":
        return _nats(ns)
    if ns.engine == "rabbitmq":
        return _rabbitmq(ns)
    plugin = ns.dynsec_plugin or find_dynsec_plugin()
    if plugin is None:
        raise UsageError(
            "Mosquitto's dynamic-security plugin (mosquitto_dynamic_security.so) was not found: "
            "pass --dynsec-plugin PATH (it binds each device's client id to its account)"
        )
    if bool(ns.site) != bool(ns.central):
        raise UsageError("--site and --central go together (a site broker bridges to the centre)")
    spec, findings = load_checked(fleetspec.DirectorySource(ns.repo))
    errors = [f for f in findings if f.severity is Severity.ERROR]
    if errors:
        raise FindingsError(errors)
    if ns.site and ns.site not in spec.sites:
        raise UsageError(f"--site {ns.site}: not a site of the fleet ({', '.join(spec.sites)})")
    out: Path = ns.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    devices = [(d.site, d.id) for d in spec.devices.values() if ns.site in (None, d.site)]
    # With --tls, devices authenticate by certificate: no device passwords at all.
    password_devices = [] if ns.tls else devices
    cred_path: Path = ns.credentials or out / CREDENTIALS
    existing = _read_credentials(cred_path) if cred_path.is_file() else {}
    tls = None
    if ns.tls_cert:
        tls = broker.Tls(
            ns.tls_cert,
            ns.tls_key,
            ns.tls_ca,
            ns.tls_port,
            ns.require_client_cert,
            client_certs=ns.tls,
            operator_port=ns.operator_port,
        )
    bridge = None
    if ns.site:  # a site broker: its devices' accounts, a bridge with the site's account
        users = [device for _, device in password_devices] + [broker.bridge_user(ns.site)]
        missing = [u for u in users if u not in existing]
        if missing:
            raise UsageError(
                f"{cred_path}: no password for {', '.join(missing)}; run `linefleet broker "
                "config` for the central broker first and pass its --credentials"
            )
        creds = {u: existing[u] for u in users[:-1]}
        central = BrokerAddress.parse(ns.central)
        bridge = broker.Bridge(
            ns.site,
            central.host,
            central.port,
            broker.bridge_user(ns.site),
            existing[broker.bridge_user(ns.site)],
            central.ca_file if central.tls else None,
        )
        acl = broker.acl_text(devices, None)
        bound = broker.client_ids(password_devices, [])
    else:
        sites = sorted(spec.sites)
        users = [
            ns.reconciler_user,
            *(d for _, d in password_devices),
            *map(broker.bridge_user, sites),
        ]
        creds = broker.credentials(users, existing)
        _write(cred_path, json.dumps(creds, indent=2, sort_keys=True) + "\n", 0o600)
        acl = broker.acl_text(devices, ns.reconciler_user, sites)
        bound = broker.client_ids(password_devices, sites)
    options = broker.BrokerOptions(
        str(out), ns.data_dir, ns.port or None, ns.bind, tls, bridge, plugin, ns.broker_user
    )
    ids = _broker_ids(ns.broker_user)
    group = None if ids is None else ids[1]
    _prepare_data_dir(Path(ns.data_dir), ids)
    _write(out / "passwd", broker.password_file(creds), 0o640, group)
    _write(out / broker.DYNSEC_FILE, broker.dynsec_text(creds, bound), 0o640, group)
    _write(out / "acl", acl, 0o644, group)
    _write(out / "mosquitto.conf", broker.config_text(options), 0o640, group)
    new = sorted(set(creds) - set(existing))  # always empty for a site broker
    summary = {
        "config": str(out / "mosquitto.conf"),
        "site": ns.site,
        "devices": len(devices),
        "accounts": len(creds),
        "new_accounts": new,
        "tls": tls is not None,
        "client_certs": bool(ns.tls),
        "client_id_binding": plugin,
        "broker_user": ns.broker_user,
        "readable_by_broker_user": ids is not None,
    }
    if ns.format == "json":
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif ns.site:
        print(f"wrote {out}/mosquitto.conf (bridged to {ns.central}), acl and passwd")
        print(f"site {ns.site}: {len(devices)} device account(s)")
    else:
        print(f"wrote {out}/mosquitto.conf, acl, passwd and {cred_path} (keep it secret)")
        print(f"{len(creds)} account(s) ({len(devices)} devices); {len(new)} new")
    return int(ExitCode.OK)
