"""`linefleet validate`: schema and references of one revision, plus rollout policy on a change."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from linefleet_core import spec as fleetspec
from linefleet_core.errors import Finding, Severity
from linefleet_core.validation import load_checked
from linefleet_core.yamlsafe import ParsedBlobs
from reconciler.review.graphcheck import GraphResults, check_graphs, checker_version


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
    if base is None:
        head, findings = _load_head(repo, checks, check_artifacts)
        return Report(sorted(set(findings)), files=len(head.docs))

    from linefleet_forge import gitcache
    from linefleet_forge.gitrepo import GitObjects, GitSource
    from reconciler.review import policy

    objects = GitObjects.open(repo)
    commit = objects.commit(base)
    parsed = gitcache.load_parsed(objects)  # YAML an earlier run parsed, by blob id
    graphs_at = gitcache.folder(objects, "graph-checks") / "results.pickle"
    version = checker_version()
    kept = None if version is None else gitcache.read_pickle(graphs_at, version)
    graphs = GraphResults(kept if isinstance(kept, dict) else {})
    # The base first: its files stream from git and are parsed in a worker (many files, two
    # cores) while they are checked here; the working tree's unchanged files are then checked.
    source = GitSource(commit, objects.subfolder(repo), objects, parsed)
    base_spec, _ = fleetspec.load(source, checks, parsed)
    head, findings = _load_head(repo, checks, check_artifacts, parsed, graphs)
    gitcache.save_parsed(objects, parsed)
    if version is not None and graphs.used.keys() != graphs.known.keys():
        gitcache.write_pickle(graphs_at, version, graphs.used)
    findings.extend(policy.check_change(base_spec, head, now or dt.datetime.now(dt.UTC)))
    return Report(sorted(set(findings)), files=len(head.docs))


def _load_head(
    repo: Path,
    checks: fleetspec.Checks,
    check_artifacts: bool,
    parsed: ParsedBlobs | None = None,
    graphs: GraphResults | None = None,
) -> tuple[fleetspec.FleetSpec, list[Finding]]:
    source = fleetspec.DirectorySource(repo)
    head, findings = load_checked(source, checks, fetch_artifacts=check_artifacts, parsed=parsed)
    findings.extend(check_graphs(head, repo, graphs))
    return head, findings
