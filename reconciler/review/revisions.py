"""Read the fleet at two git revisions and plan the change between them.

The executor side of `reconciler.review.changeplan`: it touches git (read-only, through git
objects: no checkout, so a dirty working tree does not matter) or, on request, the working
tree itself, and hands plain specs to the pure planner. Both revisions are read through one
`GitObjects` and one `spec.Checks`, so a file the change did not touch is read, parsed and
checked once; and the YAML of the files neither revision changed since the last run is not
parsed again (`linefleet_forge.gitcache`: parsed documents by blob id, in the git folder).

The base revision's own findings only count its errors in the plan: its cross-file and
artifact checks are kept by commit (and the checking code) in the git folder, so a second
plan from the same base (every push to a pull request) runs them on the head alone.
"""

from __future__ import annotations

import datetime as dt
from functools import cache
from pathlib import Path

import pydantic
import yaml

import linefleet_core
from linefleet_core.errors import Finding
from linefleet_core.spec import Checks, DirectorySource, FleetSpec, load
from linefleet_core.validation import artifacts, check, load_checked
from linefleet_core.yamlsafe import ParsedBlobs
from linefleet_forge import gitcache, gitrepo
from linefleet_forge.gitrepo import GitObjects, GitSource
from reconciler.review.changeplan import Plan, RevisionRef, plan_change

WORKTREE = "working tree"
KEPT_REVISIONS = 16


def read_revision(
    objects: GitObjects,
    rev: str,
    prefix: str,
    checks: Checks | None = None,
    parsed: ParsedBlobs | None = None,
) -> tuple[RevisionRef, FleetSpec, list[Finding]]:
    """Load and validate the fleet as it is at `rev`; a UsageError if `rev` does not exist."""
    commit = objects.commit(rev)
    spec, findings = load_checked(GitSource(commit, prefix, objects, parsed), checks, parsed=parsed)
    return RevisionRef(rev, commit.hexsha), spec, findings


def read_base(
    objects: GitObjects,
    rev: str,
    prefix: str,
    checks: Checks | None = None,
    parsed: ParsedBlobs | None = None,
) -> tuple[RevisionRef, FleetSpec, list[Finding]]:
    """`read_revision`, with the cross-file and artifact findings of the commit kept in the
    git folder (by commit and checking code): what a commit holds never changes."""
    commit = objects.commit(rev)
    source = GitSource(commit, prefix, objects, parsed)
    spec, findings = load(source, checks, parsed)
    version = _checks_version()
    at = gitcache.folder(objects, "revision-checks") / "findings.pickle"
    found = None if version is None else gitcache.read_pickle(at, version)
    kept: dict[str, list[Finding]] = found if isinstance(found, dict) else {}
    key = f"{commit.hexsha}:{prefix}"
    if key not in kept:
        kept = {k: v for k, v in kept.items() if k != key}
        kept[key] = [*check(spec), *artifacts(spec, source)]
        if version is not None:
            gitcache.write_pickle(at, version, dict(list(kept.items())[-KEPT_REVISIONS:]))
    return RevisionRef(rev, commit.hexsha), spec, [*findings, *kept[key]]


@cache
def _checks_version() -> str | None:
    """The code that checks a revision: linefleet_core, the git reader, pydantic, PyYAML."""
    core = sorted(Path(linefleet_core.__file__).parent.glob("*.py"))
    return gitcache.code_version(
        [*core, Path(gitrepo.__file__)], pydantic.VERSION, yaml.__version__
    )


def read_worktree(
    repo: Path, checks: Checks | None = None, parsed: ParsedBlobs | None = None
) -> tuple[RevisionRef, FleetSpec, list[Finding]]:
    """The fleet as it is on disk, uncommitted edits included."""
    spec, findings = load_checked(DirectorySource(repo), checks, parsed=parsed)
    return RevisionRef(WORKTREE), spec, findings


def plan_revisions(repo: Path, base: str, head: str | None, now: dt.datetime) -> Plan:
    """The plan of `base..head` for the fleet repository at `repo` (may be a subfolder).

    `head=None` plans the working tree (uncommitted edits included) against `base`.
    """
    objects = GitObjects.open(repo)
    prefix = objects.subfolder(repo)
    checks: Checks = {}
    parsed = gitcache.load_parsed(objects)
    digests = gitcache.load_digests(objects)
    base_rev, base_spec, base_findings = read_base(objects, base, prefix, checks, parsed)
    if head is None:
        head_rev, head_spec, head_findings = read_worktree(repo, checks, parsed)
    else:
        head_rev, head_spec, head_findings = read_revision(objects, head, prefix, checks, parsed)
    gitcache.save_parsed(objects, parsed)
    gitcache.save_digests(objects, digests)
    return plan_change(
        base_spec,
        head_spec,
        now=now,
        base_rev=base_rev,
        head_rev=head_rev,
        head_findings=head_findings,
        base_findings=base_findings,
    )
