"""Read the fleet at two git revisions and plan the change between them.

The executor side of `reconciler.review.changeplan`: it touches git (read-only, through git
objects: no checkout, so a dirty working tree does not matter) or, on request, the working
tree itself, and hands plain specs to the pure planner. Both revisions are read through one
`GitObjects` and one `spec.Checks`, so a file the change did not touch is read, parsed and
checked once; and the YAML of the files neither revision changed since the last run is not
parsed again (`linefleet_forge.gitcache`: parsed documents by blob id, in the git folder).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from linefleet_core.errors import Finding
from linefleet_core.spec import Checks, DirectorySource, FleetSpec
from linefleet_core.validation import load_checked
from linefleet_core.yamlsafe import ParsedBlobs
from linefleet_forge import gitcache
from linefleet_forge.gitrepo import GitObjects, GitSource
from reconciler.review.changeplan import Plan, RevisionRef, plan_change

WORKTREE = "working tree"


def read_revision(
    objects: GitObjects,
    rev: str,
    prefix: str,
    checks: Checks | None = None,
    parsed: ParsedBlobs | None = None,
) -> tuple[RevisionRef, FleetSpec, list[Finding]]:
    """Load and validate the fleet as it is at `rev`; a UsageError if `rev` does not exist."""
    commit = objects.commit(rev)
    spec, findings = load_checked(GitSource(commit, prefix, objects), checks, parsed=parsed)
    return RevisionRef(rev, commit.hexsha), spec, findings


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
    base_rev, base_spec, base_findings = read_revision(objects, base, prefix, checks, parsed)
    if head is None:
        head_rev, head_spec, head_findings = read_worktree(repo, checks, parsed)
    else:
        head_rev, head_spec, head_findings = read_revision(objects, head, prefix, checks, parsed)
    gitcache.save_parsed(objects, parsed)
    return plan_change(
        base_spec,
        head_spec,
        now=now,
        base_rev=base_rev,
        head_rev=head_rev,
        head_findings=head_findings,
        base_findings=base_findings,
    )
