"""`linefleet artifacts push FILE --to oci://HOST/REPO`: upload a model to the OCI registry.

Prints the catalogue entry (`artifact:` with `url`, `sha256`, `size`) to paste under a model
version. Pushing is idempotent: a blob the registry holds is not sent again. Credentials come
from `--credentials FILE` (the same JSON a device uses) or the environment
(`LINEFLEET_REGISTRY_USERNAME` + `LINEFLEET_REGISTRY_PASSWORD`, or `LINEFLEET_REGISTRY_TOKEN`),
never from the command line. Exit codes: 0 pushed, 1 refused by the registry, 2 usage,
4 registry unreachable.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from linefleet.options import credentials_for
from linefleet_core.errors import ExitCode, UsageError, need_directory


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("artifacts", help="push model artifacts to the OCI registry")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    push = verbs.add_parser(
        "push",
        help="upload FILE and print its catalogue entry",
        description="Upload FILE as a one-layer OCI artifact to oci://HOST[:PORT]/REPO and print "
        "the catalogue entry (oci://HOST/REPO@sha256:..., sha256, size).",
    )
    push.add_argument("file", type=Path, metavar="FILE")
    push.add_argument("--to", required=True, metavar="oci://HOST/REPO")
    push.add_argument("--tag", help="also tag the artifact (for example the model version)")
    push.add_argument("--credentials", type=Path, metavar="FILE", help="registry credentials")
    push.add_argument("--format", choices=("yaml", "json"), default="yaml")
    push.set_defaults(run=run_push)
    check = verbs.add_parser(
        "check",
        help="check that every oci:// model of the catalogue is in its registry",
        description="HEAD each oci:// artifact of the model catalogue at REV in its registry "
        "(credentials as for push). Exit 0 all present, 1 some missing, 4 a registry "
        "unreachable. publish.yml runs it before publishing.",
    )
    check.add_argument("--repo", type=Path, default=Path(), help="fleet repository (default: .)")
    check.add_argument("--rev", default="HEAD", help="fleet revision (default: HEAD)")
    check.add_argument("--credentials", type=Path, metavar="FILE", help="registry credentials")
    check.set_defaults(run=run_check)


def run_push(ns: argparse.Namespace) -> int:
    from linefleet_core.oci import OciError, parse_repo, push_file

    if not ns.file.is_file():
        raise UsageError(f"{ns.file}: no such file")
    try:
        host, _ = parse_repo(ns.to)
    except OciError as exc:
        raise UsageError(f"--to {exc}") from None
    creds = credentials_for(host, ns.credentials)
    pushed = push_file(ns.file, ns.to, tag=ns.tag, credentials=creds)
    entry = pushed.catalogue_entry()
    if ns.format == "json":
        json.dump({"artifact": entry, "manifest": pushed.manifest_digest}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print("artifact:")
        print(f"  url: {entry['url']}")
        print(f"  sha256: {entry['sha256']}")
        print(f"  size: {entry['size']}")
    return int(ExitCode.OK)


def run_check(ns: argparse.Namespace) -> int:
    from linefleet_core.oci import blob_exists, is_oci, parse_ref
    from reconciler.service.publish import load_revision

    need_directory("--repo", ns.repo)
    spec = load_revision(ns.repo, ns.rev).spec
    refs = sorted(
        {
            (f"{family.name}@{v.version}", v.artifact.url)
            for family in spec.models.values()
            for v in family.versions
            if is_oci(v.artifact.url)
        }
    )
    missing = []
    for name, url in refs:
        ref = parse_ref(url)
        if not blob_exists(ref, credentials_for(ref.host, ns.credentials)):
            missing.append(f"{name}: {url}")
    for line in missing:
        print(f"missing: {line}", file=sys.stderr)
    print(f"{len(refs) - len(missing)} of {len(refs)} oci:// artifact(s) in their registry")
    return int(ExitCode.INVALID if missing else ExitCode.OK)
