"""`linefleet mirror config|warm --site S`: a site's artifact mirror (a pull-through cache).

`config` writes the Distribution (`docker-registry serve FILE`) config of the site's mirror,
proxying the central registry the model catalogue names; `warm` makes the mirror store every
model the site's lines need (each fetched from the centre once) before devices ask for them.
Exit codes: 0 ok, 1 the fleet is invalid or names no mirror, 2 usage, 4 mirror unreachable.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from linefleet_core.errors import ExitCode, FindingsError, Severity, UsageError

if TYPE_CHECKING:
    from linefleet_core.spec import FleetSpec


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("mirror", help="configure and warm a site's artifact mirror")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    cfg = verbs.add_parser(
        "config",
        help="write the site mirror's registry config (pull-through cache)",
        description="Write a CNCF Distribution config (docker-registry serve FILE) that caches "
        "the central registry for one site's devices.",
    )
    cfg.add_argument("--site", required=True)
    cfg.add_argument("--repo", type=Path, default=Path(), help="fleet repository (default: .)")
    cfg.add_argument("--out", type=Path, required=True, help="config file to write")
    cfg.add_argument("--listen", help="HOST:PORT to bind (default: the site's artifact_mirror)")
    cfg.add_argument("--data-dir", default="/var/lib/linefleet-mirror", help="blob storage")
    cfg.add_argument(
        "--upstream", help="central registry HOST[:PORT] (default: the one the catalogue names)"
    )
    cfg.add_argument(
        "--htpasswd", help="htpasswd file (bcrypt) with the site devices' read-only accounts"
    )
    cfg.set_defaults(run=run_config)

    warm = verbs.add_parser(
        "warm",
        help="make the site mirror store every model the site needs",
        description="Fetch each oci:// model of the site's lines through its mirror once, so "
        "devices asking at the same time are all served from the mirror's storage.",
    )
    warm.add_argument("--site", required=True)
    warm.add_argument("--repo", type=Path, default=Path(), help="fleet repository (default: .)")
    warm.add_argument("--credentials", type=Path, help="registry credentials (JSON by host)")
    warm.set_defaults(run=run_warm)


def _load(repo: Path, site: str) -> FleetSpec:
    from linefleet_core import spec as fleetspec
    from linefleet_core.errors import need_directory
    from linefleet_core.validation import load_checked

    need_directory("--repo", repo)
    spec, findings = load_checked(fleetspec.DirectorySource(repo))
    errors = [f for f in findings if f.severity is Severity.ERROR]
    if errors:
        raise FindingsError(errors)
    if site not in spec.sites:
        raise UsageError(
            f"--site {site}: not a site of the fleet ({', '.join(sorted(spec.sites))})"
        )
    return spec


def run_config(ns: argparse.Namespace) -> int:
    from linefleet_core.oci import Credentials
    from reconciler.mirror import MirrorError, MirrorOptions, config_text, upstream_of

    spec = _load(ns.repo, ns.site)
    listen = ns.listen or spec.sites[ns.site].artifact_mirror
    if not listen:
        raise MirrorError(
            f"site {ns.site} names no artifact_mirror in its site.yaml (or pass --listen)"
        )
    upstream = ns.upstream or upstream_of(spec)
    user = os.environ.get("LINEFLEET_REGISTRY_USERNAME", "")
    creds = Credentials(user, os.environ.get("LINEFLEET_REGISTRY_PASSWORD", "")) if user else None
    text = config_text(MirrorOptions(listen, ns.data_dir, upstream, creds, ns.htpasswd))
    ns.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = ns.out.with_name(f".{ns.out.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    tmp.replace(ns.out)
    print(f"wrote {ns.out}: site {ns.site} mirror on {listen}, caching {upstream}")
    print(f"start it with: docker-registry serve {ns.out}")
    return int(ExitCode.OK)


def run_warm(ns: argparse.Namespace) -> int:
    from linefleet.options import credentials_for
    from reconciler.mirror import MirrorError, site_artifacts, warm

    spec = _load(ns.repo, ns.site)
    mirror = spec.sites[ns.site].artifact_mirror
    if not mirror:
        raise MirrorError(f"site {ns.site} names no artifact_mirror in its site.yaml")
    refs = site_artifacts(spec, ns.site)
    for done in warm(mirror, refs, credentials=credentials_for(mirror, ns.credentials)):
        print(f"{done.ref.with_host(mirror)}: stored ({done.seconds:.1f}s)")
    print(f"site {ns.site}: {len(refs)} model(s) in mirror {mirror}")
    return int(ExitCode.OK)
