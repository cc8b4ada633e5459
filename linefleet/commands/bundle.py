"""`linefleet bundle export --site S [--rev REV] --out FILE`: a signed air-gap bundle.

Exit codes: 0 written, 1 invalid fleet or an artifact that does not match its catalogue entry,
2 usage (unknown site, revision or key), 4 registry unreachable.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from linefleet_core.errors import ExitCode, need_directory


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bundle", help="signed bundles for air-gapped sites")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    e = verbs.add_parser(
        "export",
        help="write one signed file with a site's desired states and every model they need",
        description="Compile and sign each device of SITE at REV as publish would, and bundle "
        "the documents with every model they name (checked against the catalogue). Apply it "
        "on a device with `linefleet edge import FILE` or `edge run --bundle FILE`.",
    )
    e.add_argument("--site", required=True)
    e.add_argument("--rev", default="HEAD", help="fleet revision (default: HEAD)")
    e.add_argument("--repo", type=Path, default=Path(), help="fleet repository (default: .)")
    e.add_argument("--out", type=Path, required=True, help="bundle file to write")
    e.add_argument(
        "--signing-key",
        type=Path,
        help="Ed25519 private key (PEM); default: $LINEFLEET_SIGNING_KEY (as publish)",
    )
    e.add_argument("--credentials", type=Path, help="registry credentials (JSON by host)")
    e.add_argument("--format", choices=("text", "json"), default="text")
    e.set_defaults(run=run_export)


def run_export(ns: argparse.Namespace) -> int:
    from linefleet.options import credentials_for
    from linefleet_core.oci import is_oci, parse_ref
    from linefleet_core.signing import SigningKey
    from reconciler.bundle import export_bundle
    from reconciler.service.publish import default_artifact_base, load_revision

    need_directory("--repo", ns.repo)
    key = SigningKey.load(ns.signing_key)
    revision = load_revision(ns.repo, ns.rev)
    hosts = {
        parse_ref(v.artifact.url).host
        for family in revision.spec.models.values()
        for v in family.versions
        if is_oci(v.artifact.url)
    }
    creds = credentials_for(min(hosts), ns.credentials) if hosts else None
    done = export_bundle(
        revision, ns.repo, ns.site, key, ns.out, default_artifact_base(ns.repo), creds
    )
    summary = {
        "bundle": str(done.path),
        "site": ns.site,
        "commit": revision.commit,
        "generation": revision.generation,
        "devices": done.devices,
        "artifacts": done.artifacts,
        "artifact_bytes": done.artifact_bytes,
        "bytes": done.size,
    }
    if ns.format == "json":
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(
            f"wrote {done.path}: site {ns.site} at {revision.commit[:12]} (generation "
            f"{revision.generation}), {done.devices} device(s), {done.artifacts} model(s), "
            f"{done.size} bytes"
        )
    return int(ExitCode.OK)
