"""`linefleet publish`: send the fleet's desired state to the broker (only what changed)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from linefleet.options import seconds
from linefleet_core.errors import ExitCode, UsageError, need_directory


@dataclass(frozen=True)
class PublishArgs:
    broker: str
    repo: Path
    rev: str
    signing_key: Path | None
    artifact_base: str | None
    format: str
    dry_run: bool = False
    forge: str | None = None
    now: dt.datetime | None = None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "publish",
        help="compile, sign and publish each device's desired state (retained, QoS 1)",
        description=(
            "Publish the fleet at a revision to the broker. Only documents whose content "
            "differs from what the broker retains are sent; removed devices are cleared. "
            "When the broker's publish marker names an earlier commit this repository "
            "published, only the devices the change touches are compiled, signed and "
            "compared (docs/reconciler.md); --full compares every device. "
            "Exit 0 ok, 1 invalid fleet, 2 usage, 4 broker unreachable (re-run to finish)."
        ),
    )
    p.add_argument(
        "--broker",
        required=True,
        help="mqtt://HOST:PORT or mqtts://HOST:PORT; a cluster: mqtt://A:PORT,B:PORT,...",
    )
    p.add_argument("--repo", type=Path, default=Path(), help="fleet repository (default: .)")
    p.add_argument("--rev", default="HEAD", help="git revision to publish (default: HEAD)")
    p.add_argument(
        "--signing-key", type=Path, help="Ed25519 PEM key (default: $LINEFLEET_SIGNING_KEY)"
    )
    p.add_argument(
        "--artifact-base",
        help="base URL for repository-relative artifacts (default: $LINEFLEET_ARTIFACT_BASE "
        "if set, else the file:// URL of the repo)",
    )
    p.add_argument(
        "--refuse-file-urls",
        action="store_true",
        help="exit 1 before publishing if a document would name a file:// artifact (CI: "
        "devices cannot open the publishing machine's files)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="read the broker, say what would be sent, send nothing",
    )
    p.add_argument(
        "--forge",
        help="read who merged the published commit from this forge (local, github://O/R, "
        "gitea://H/O/R; default: the repository's local forge, else the git committer)",
    )
    p.add_argument(
        "--max-age",
        type=seconds,
        metavar="SECONDS",
        help="sign documents with expires_at at most SECONDS ahead (re-signed every "
        "SECONDS/2): a device refuses an older document even with its storage wiped "
        "(default: no bound)",
    )
    p.add_argument(
        "--now",
        help="check freezes and production windows at this ISO time (default: now); a "
        "change that is not a rollback waits while its site is frozen",
    )
    p.add_argument(
        "--full",
        action="store_true",
        help="compile, sign and compare every device, whatever changed since the last "
        "publish (the default when the broker holds no marker of ours)",
    )
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(run=run)


def run(ns: argparse.Namespace) -> int:
    from linefleet.options import parse_now
    from linefleet_core.mqtturl import BrokerAddress
    from linefleet_core.signing import SigningKey
    from reconciler.service.incremental import publish_commit
    from reconciler.service.publish import default_artifact_base, live_specs

    args = PublishArgs(
        ns.broker,
        ns.repo,
        ns.rev,
        ns.signing_key,
        ns.artifact_base,
        ns.format,
        ns.dry_run,
        ns.forge,
        parse_now(ns.now),
    )
    need_directory("--repo", args.repo)
    address = BrokerAddress.parse(args.broker)
    key = SigningKey.load(args.signing_key)
    forge = None
    if args.forge is not None:
        from linefleet_forge import forge_from_spec

        forge = forge_from_spec(args.forge, args.repo)
    base = (
        args.artifact_base
        or os.environ.get("LINEFLEET_ARTIFACT_BASE")
        or default_artifact_base(args.repo)
    )
    if ns.max_age is not None and not ns.max_age > 0:
        raise UsageError("--max-age must be positive")
    result = publish_commit(
        args.repo,
        args.rev,
        address,
        key,
        base,
        full=ns.full,
        forge=forge,
        dry_run=args.dry_run,
        max_age=ns.max_age,
        refuse_file_urls=ns.refuse_file_urls,
        live=live_specs(args.repo),
        calendar_now=args.now,
    )
    if args.format == "json":
        json.dump(result.as_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        would = "would be " if result.dry_run else ""
        for device in result.published_devices:
            print(f"{would}published {device} (generation {result.generation})")
        for name in result.pruned_topics:
            print(f"{would}pruned    {name}")
        for note in result.held:
            print(f"held      {note}")
        if result.mode == "incremental":
            print("incremental: only the devices the change touches were compiled and compared")
        else:
            print(f"full pass: {result.full_reason or 'every device compared'}")
        print(
            f"{'dry run: ' if result.dry_run else ''}"
            f"commit {result.commit[:12]} generation {result.generation}: "
            f"{result.published} {would}published, {result.unchanged} unchanged, "
            f"{result.pruned} {would}pruned, {result.devices} device(s)"
        )

    return int(ExitCode.OK)
