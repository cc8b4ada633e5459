"""`linefleet validate`: schema and references of one revision, plus rollout policy on a change."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from linefleet_core import spec as fleetspec
from linefleet_core.errors import Finding, Severity
from linefleet_core.validation import load_checked
from reconciler.graphcheck import check_graphs


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    files: int = 0

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def ok(self) -> bool:
        return not self.errors


def validate(
    repo: Path,
    base: str | None = None,
    now: dt.datetime | None = None,
    *,
    check_artifacts: bool = False,
) -> Report:
    checks: fleetspec.Checks = {}  # the base shares the work on files the change left alone
    head, findings = load_checked(
        fleetspec.DirectorySource(repo), checks, fetch_artifacts=check_artifacts
    )
    findings.extend(check_graphs(head, repo))
    if base is not None:
        from linefleet_forge.gitrepo import GitObjects, GitSource
        from reconciler.review import policy

        objects = GitObjects.open(repo)
        source = GitSource(objects.commit(base), objects.subfolder(repo), objects)
        base_spec, _ = fleetspec.load(source, checks)
        findings.extend(policy.check_change(base_spec, head, now or dt.datetime.now(dt.UTC)))
    return Report(sorted(set(findings)), files=len(head.docs))
