"""`linefleet plan`: what a change between two revisions does to the fleet, and may it merge.

Exit 0: the head revision is valid and the rollout policy allows every change.
Exit 1: the head revision is invalid or the change violates the policy (both are in the plan).
Exit 2: usage (unknown revision, not a git repository, bad --now).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from dataclasses import dataclass
from pathlib import Path

from linefleet.options import parse_now
from linefleet_core.errors import ExitCode, need_directory
from linefleet_core.gcpause import paused_gc

FORMATS = ("markdown", "json", "text")


@dataclass(frozen=True)
class PlanArgs:
    repo: Path
    base: str
    head: str | None
    """None: the working tree."""
    format: str
    now: dt.datetime
    out: Path | None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "plan",
        help="show what a change between two git revisions does to lines and devices",
        description=(
            "Compare the fleet at two git revisions (read from git objects: uncommitted "
            "edits are not part of the plan unless --worktree is given). Exit 0 when the head "
            "is valid and the rollout policy passes, 1 when it is invalid or violates the "
            "policy, 2 on usage errors."
        ),
    )
    p.add_argument("--base", required=True, help="git revision the change starts from")
    head = p.add_mutually_exclusive_group()
    # No default here: argparse would not see `--head HEAD --worktree` as a conflict.
    head.add_argument("--head", help="git revision of the change (default: HEAD)")
    head.add_argument(
        "--worktree",
        action="store_true",
        help="plan the working tree (uncommitted edits included) instead of --head",
    )
    p.add_argument("--repo", type=Path, default=Path(), help="fleet repository (default: .)")
    p.add_argument("--format", choices=FORMATS, default="markdown")
    p.add_argument("--now", help="evaluate freeze and production windows at this ISO time")
    p.add_argument("--out", type=Path, help="write the plan to this file instead of stdout")
    p.set_defaults(run=run)


@paused_gc()  # a one-shot command: no cycle collection until what it read is freed
def run(ns: argparse.Namespace) -> int:
    from reconciler.review import render
    from reconciler.review.revisions import plan_revisions

    args = PlanArgs(
        repo=ns.repo,
        base=ns.base,
        head=None if ns.worktree else ns.head or "HEAD",
        format=ns.format,
        now=parse_now(ns.now) or dt.datetime.now(dt.UTC),
        out=ns.out,
    )
    need_directory("--repo", args.repo)
    plan = plan_revisions(args.repo, args.base, args.head, args.now)
    output = {
        "markdown": render.markdown,
        "json": render.json_text,
        "text": render.text,
    }[args.format](plan)
    if args.out is not None:
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(output, encoding="utf-8")
        tmp.replace(args.out)
    else:
        sys.stdout.write(output)
    return int(ExitCode.OK if plan.ok else ExitCode.INVALID)
