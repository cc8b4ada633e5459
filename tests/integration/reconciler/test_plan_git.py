"""`plan_revisions` against real git repositories: a clone of a bare remote, branches, subfolders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import git
import pytest

from linefleet_core.errors import UsageError
from linefleet_core.spec import Checks, DirectorySource
from linefleet_core.validation import load_checked
from linefleet_forge.gitrepo import GitObjects, GitSource
from reconciler.review.changeplan import Action
from reconciler.review.check import validate
from reconciler.review.revisions import plan_revisions
from reconciler.rules.rollout import Verdict
from tests.support.minifleet import (
    QUIET,
    TO_CANARY,
    commit_all,
    committed_minifleet,
    edit_rollout,
    init_repo,
    line_file,
    write_minifleet,
)

pytestmark = pytest.mark.integration
NOW = QUIET


@pytest.fixture
def clone(tmp_path: Path) -> tuple[Path, Any]:
    """A working clone whose `origin/main` holds the mini fleet, like a CI checkout of a PR."""
    seed = tmp_path / "seed"
    committed_minifleet(seed)
    remote = tmp_path / "fleet.git"
    git.Repo.clone_from(seed, remote, bare=True)
    work = tmp_path / "work"
    repo = git.Repo.clone_from(remote, work)
    with repo.config_writer() as cfg:
        cfg.set_value("user", "name", "Fleet Tester")
        cfg.set_value("user", "email", "fleet-tester@example.com")
    repo.git.checkout("-b", "promote-line-1")
    return work, repo


def test_plan_of_a_pull_request_branch(clone: tuple[Path, Any]) -> None:
    work, repo = clone
    edit_rollout(work, "toledo/line-1", candidate=TO_CANARY)
    head_sha = commit_all(work, "toledo/line-1: surface-classifier@3 to canary")

    plan = plan_revisions(work, "origin/main", "HEAD", NOW)

    assert plan.base.sha == repo.commit("origin/main").hexsha
    assert plan.head.sha == head_sha
    assert [(line.key, line.verdict) for line in plan.lines] == [("toledo/line-1", Verdict.ALLOWED)]
    assert plan.ok


def test_a_violation_on_a_later_commit_fails_the_plan(clone: tuple[Path, Any]) -> None:
    work, _ = clone
    edit_rollout(work, "toledo/line-1", candidate=TO_CANARY)
    first = commit_all(work, "to canary")
    edit_rollout(work, "toledo/line-2", serving="surface-classifier@3", candidate=None)
    commit_all(work, "toledo/line-2 straight to production")

    whole = plan_revisions(work, "origin/main", "HEAD", NOW)
    step = plan_revisions(work, first, "HEAD", NOW)

    assert {line.key for line in whole.lines} == {"toledo/line-1", "toledo/line-2"}
    assert [line.key for line in step.lines] == ["toledo/line-2"]
    assert not step.ok
    [finding] = step.violations
    assert finding.message == (
        "toledo/line-2: surface-classifier@3 goes from shadow straight to production; "
        "promote to canary first"
    )


def test_uncommitted_changes_are_not_part_of_the_plan(clone: tuple[Path, Any]) -> None:
    work, _ = clone
    edit_rollout(work, "toledo/line-1", candidate=TO_CANARY)  # not committed
    plan = plan_revisions(work, "origin/main", "HEAD", NOW)
    assert plan.empty and plan.ok

    worktree = plan_revisions(work, "origin/main", None, NOW)  # linefleet plan --worktree
    assert worktree.head.ref == "working tree" and worktree.head.sha == ""
    assert [(line.key, line.verdict) for line in worktree.lines] == [
        ("toledo/line-1", Verdict.ALLOWED)
    ]


def test_a_fleet_in_a_subfolder_of_the_git_repository(tmp_path: Path) -> None:
    root = tmp_path / "monorepo"
    fleet = root / "ops" / "fleet-repo"
    write_minifleet(fleet)
    (root / "README.md").parent.mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_text("monorepo\n", encoding="utf-8")
    init_repo(root)
    base = commit_all(root, "fleet")
    line_file(fleet, "dresden/line-2").unlink()
    commit_all(root, "retire dresden/line-2")

    plan = plan_revisions(fleet, base, "HEAD", NOW)

    assert [(line.key, line.action) for line in plan.lines] == [("dresden/line-2", Action.DELETE)]
    assert plan.lines[0].devices == ("dresden-edge-1",)
    assert plan.errors  # dresden-edge-1 still serves the removed line: head is invalid
    assert any("unknown line 'dresden/line-2'" in f.message for f in plan.errors)


def test_unknown_revisions_and_folders_are_usage_errors(
    clone: tuple[Path, Any], tmp_path: Path
) -> None:
    work, _ = clone
    with pytest.raises(UsageError, match="unknown git revision 'no-such-branch'"):
        plan_revisions(work, "no-such-branch", "HEAD", NOW)
    with pytest.raises(UsageError, match="unknown git revision 'deadbeef'"):
        plan_revisions(work, "origin/main", "deadbeef", NOW)
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(UsageError, match="not a git repository"):
        plan_revisions(plain, "main", "HEAD", NOW)


def test_validate_base_checks_the_working_tree_against_a_revision(
    clone: tuple[Path, Any],
) -> None:
    work, _ = clone
    edit_rollout(work, "toledo/line-2", candidate=TO_CANARY)  # evidence 0.90 vs 0.94: too weak
    report = validate(work, "origin/main", NOW)
    assert not report.ok
    [finding] = report.errors
    assert finding.path == "fleet/sites/toledo/lines/line-2.yaml"
    assert finding.code == "policy"
    assert "needs at least 0.930" in finding.message


def test_revisions_read_together_share_the_files_the_change_left_alone(tmp_path: Path) -> None:
    fleet = committed_minifleet(tmp_path / "fleet")
    base = commit_all(fleet, "nothing new")
    edit_rollout(fleet, "toledo/line-1", candidate=TO_CANARY)
    head = commit_all(fleet, "toledo/line-1 to canary")
    objects = GitObjects.open(fleet)
    checks: Checks = {}

    base_spec, base_findings = load_checked(GitSource(objects.commit(base), "", objects), checks)
    read_for_base = len(objects.blobs)
    head_spec, head_findings = load_checked(GitSource(objects.commit(head), "", objects), checks)

    assert read_for_base == len(base_spec.docs) and len(objects.blobs) == read_for_base + 1
    assert head_spec.lines["toledo/line-2"] is base_spec.lines["toledo/line-2"]
    assert head_spec.lines["toledo/line-1"] != base_spec.lines["toledo/line-1"]
    # The same as each revision read on its own, through GitPython's objects.
    repo = git.Repo(fleet)
    for sha, spec, findings in ((base, base_spec, base_findings), (head, head_spec, head_findings)):
        alone, alone_findings = load_checked(GitSource(repo.commit(sha)))
        assert (alone.lines, alone.devices, alone.models) == (spec.lines, spec.devices, spec.models)
        assert sorted(alone_findings) == sorted(findings)
        assert {p.path for p in alone.docs.values()} == {p.path for p in spec.docs.values()}


def test_a_broken_file_is_located_in_each_revision_that_holds_it(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet"
    write_minifleet(fleet)
    old = line_file(fleet, "dresden/line-2")
    old.write_text(old.read_text(encoding="utf-8") + "colour: red\n", encoding="utf-8")
    row = len(old.read_text(encoding="utf-8").splitlines())
    init_repo(fleet)
    base = commit_all(fleet, "a line with an unknown key")
    old.rename(old.with_name("line-9.yaml"))  # the same bytes at another path
    head = commit_all(fleet, "the broken line moved")
    objects = GitObjects.open(fleet)
    checks: Checks = {}

    def unknown_keys(sha: str) -> list[tuple[str, int, int]]:
        _, findings = load_checked(GitSource(objects.commit(sha), "", objects), checks)
        return [(f.path, f.line, f.col) for f in findings if f.field == "colour"]

    assert unknown_keys(base) == [("fleet/sites/dresden/lines/line-2.yaml", row, 1)]
    assert unknown_keys(head) == [("fleet/sites/dresden/lines/line-9.yaml", row, 1)]
    report = validate(fleet, base, NOW)  # the working tree and the base share the check
    assert [f.path for f in report.errors if f.field == "colour"] == [
        "fleet/sites/dresden/lines/line-9.yaml"
    ]
    assert plan_revisions(fleet, base, head, NOW).base_errors == 1


def test_git_objects_lists_the_fleet_files_of_a_revision_in_order(tmp_path: Path) -> None:
    root = tmp_path / "monorepo"
    fleet = root / "ops" / "fleet-repo"
    write_minifleet(fleet)
    (fleet / "fleet" / "NOTES.md").write_text("not a fleet file\n", encoding="utf-8")
    (fleet / "other").mkdir()
    (fleet / "other" / "stray.yaml").write_text("kind: Line\n", encoding="utf-8")
    init_repo(root)
    sha = commit_all(root, "fleet")
    objects = GitObjects.open(fleet)

    files = list(objects.fleet_files(objects.commit(sha).hexsha, "ops/fleet-repo"))

    on_disk = dict(DirectorySource(fleet).files())
    assert dict(files) == on_disk
    paths = [path for path, _ in files]
    assert paths == sorted(paths, key=lambda p: (not p.startswith("fleet/"), p))  # as before
    assert objects.work_tree == str(root)
    with pytest.raises(UsageError, match="unknown git revision '--all'"):
        objects.commit("--all")


def test_a_fleet_folder_replaced_by_a_link_plans_no_change_only_its_error(tmp_path: Path) -> None:
    """`fleet` committed as a link to another folder: none of its files is read, so every
    line, device, model and the policy were planned as removed (or back to defaults)."""
    root = committed_minifleet(tmp_path / "fleet")
    (root / "fleet").rename(root / "elsewhere")
    (root / "fleet").symlink_to("elsewhere")
    commit_all(root, "fleet/ is a link now")
    plan = plan_revisions(root, "HEAD~1", "HEAD", NOW)
    assert [f.path for f in plan.validation] == ["fleet"]
    assert (plan.lines, plan.devices, plan.sites, plan.catalogue, plan.settings) == (
        (), (), (), (), ()
    )  # fmt: skip
    assert plan.summary.text.endswith("head is invalid: 1 error")
