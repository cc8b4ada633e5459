"""`linefleet validate`: schema and references of one revision, plus rollout policy on a change."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from linefleet_core import spec as fleetspec
from linefleet_core import validation
from linefleet_core.errors import Finding, Severity


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


def load_checked(source: fleetspec.Source) -> tuple[fleetspec.FleetSpec, list[Finding]]:
    """Load one revision and run every single-revision check on it."""
    spec, findings = fleetspec.load(source)
    findings.extend(validation.check(spec))
    return spec, findings


def validate(repo: Path, base: str | None = None, now: dt.datetime | None = None) -> Report:
    head, findings = load_checked(fleetspec.DirectorySource(repo))
    if base is not None:
        from linefleet_core.gitrepo import GitSource, open_repo, resolve
        from reconciler import policy

        git_repo = open_repo(repo)
        prefix = _prefix(git_repo, repo)
        base_spec, _ = fleetspec.load(GitSource(resolve(git_repo, base), prefix))
        findings.extend(policy.check_change(base_spec, head, now or dt.datetime.now(dt.UTC)))
    return Report(sorted(set(findings)), files=len(head.docs))


def _prefix(git_repo: object, repo: Path) -> str:
    top = Path(str(getattr(git_repo, "working_tree_dir", repo))).resolve()
    rel = repo.resolve().relative_to(top).as_posix()
    return "" if rel == "." else rel
