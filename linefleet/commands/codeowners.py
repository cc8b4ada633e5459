"""`linefleet codeowners`: generate `.github/CODEOWNERS` from the fleet, or `--check` it.

What it writes is `linefleet.scaffold.codeowners.render` (who owns which folder, and why).
Exit 0 written / up to date, 1 stale (with --check) or invalid owners, 2 usage.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from linefleet.scaffold.codeowners import TARGET, render
from linefleet_core.atomic import write_atomic
from linefleet_core.errors import ExitCode, FindingsError, Severity, need_directory


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "codeowners",
        help="generate .github/CODEOWNERS from site approvers and policy owners",
        description="Write .github/CODEOWNERS from the fleet. Exit 0 ok, 1 stale (--check) "
        "or invalid owners, 2 usage.",
    )
    p.add_argument("--repo", type=Path, default=Path(), help="fleet repository (default: .)")
    p.add_argument("--check", action="store_true", help="only compare; exit 1 when stale")
    p.set_defaults(run=run)


def run(ns: argparse.Namespace) -> int:
    from linefleet_core.spec import DirectorySource, load

    repo: Path = ns.repo
    need_directory("--repo", repo)
    spec, findings = load(DirectorySource(repo))
    errors = [f for f in findings if f.severity is Severity.ERROR]  # owners: a schema rule
    if errors:
        raise FindingsError(errors)
    text = render(spec)
    target = repo / TARGET
    current = target.read_text(encoding="utf-8") if target.is_file() else None
    if ns.check:
        if current == text:
            print(f"{TARGET} is up to date")
            return int(ExitCode.OK)
        diff = difflib.unified_diff(
            (current or "").splitlines(keepends=True),
            text.splitlines(keepends=True),
            f"{TARGET} (committed)",
            f"{TARGET} (from the fleet)",
        )
        sys.stdout.writelines(diff)
        state = "missing" if current is None else "stale"
        print(f"{TARGET} is {state}: run `linefleet codeowners` and commit it", file=sys.stderr)
        return int(ExitCode.INVALID)
    if current != text:
        _write_atomic(target, text)
    print(f"wrote {TARGET} ({len(spec.sites)} site(s))")
    return int(ExitCode.OK)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text.encode("utf-8"))
