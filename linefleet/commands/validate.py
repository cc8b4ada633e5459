"""`linefleet validate`: the pull-request check (exit 0 valid, 1 invalid, 2 usage)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from linefleet.options import parse_now
from linefleet_core.errors import ExitCode, need_directory
from linefleet_core.gcpause import paused_gc


@dataclass(frozen=True)
class ValidateArgs:
    repo: Path
    base: str | None
    format: str
    now: dt.datetime | None
    check_artifacts: bool = False


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "validate",
        help="check every fleet and taxonomy file (schema, references, rollout policy)",
        description="Validate the fleet repository. Exit 0 valid, 1 invalid, 2 usage error.",
    )
    p.add_argument("--repo", type=Path, default=Path(), help="fleet repository (default: .)")
    p.add_argument("--base", help="git revision to compare with: also checks rollout policy")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--now", help="evaluate freeze windows at this ISO time (default: now)")
    p.add_argument(
        "--check-artifacts",
        action="store_true",
        help="also download every remote artifact (https://, oci://) and check size and sha256",
    )
    p.set_defaults(run=run)


@paused_gc()  # a one-shot command: no cycle collection until what it read is freed
def run(ns: argparse.Namespace) -> int:
    from reconciler.review.check import validate

    args = ValidateArgs(ns.repo, ns.base, ns.format, parse_now(ns.now), ns.check_artifacts)
    need_directory("--repo", args.repo)
    report = validate(args.repo, args.base, args.now, check_artifacts=args.check_artifacts)
    if args.format == "json":
        doc = {
            "format_version": 1,
            "valid": report.ok,
            "errors": len(report.errors),
            "warnings": len(report.findings) - len(report.errors),
            "findings": [f.as_dict() for f in report.findings],
        }
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for finding in report.findings:
            print(finding.render())
        warnings = len(report.findings) - len(report.errors)
        verdict = "valid" if report.ok else "invalid"
        print(
            f"{verdict}: {len(report.errors)} error(s), {warnings} warning(s) "
            f"in {report.files} document(s)"
        )
    return int(ExitCode.OK if report.ok else ExitCode.INVALID)
