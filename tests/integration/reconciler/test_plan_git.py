"""`plan_revisions` against real git repositories: a clone of a bare remote, branches, subfolders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import git
import pytest

from linefleet_core.errors import UsageError
from reconciler.check import validate
from reconciler.plan import Action
from reconciler.policy import Verdict
from reconciler.revisions import plan_revisions
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
    head_sha = commit_all(work, "toledo/line-1: surface-cnn@3 to canary")

    plan = plan_revisions(work, "origin/main", "HEAD", NOW)

    assert plan.base.sha == repo.commit("origin/main").hexsha
    assert plan.head.sha == head_sha
    assert [(line.key, line.verdict) for line in plan.lines] == [("toledo/line-1", Verdict.ALLOWED)]
    assert plan.ok


def test_a_violation_on_a_later_commit_fails_the_plan(clone: tuple[Path, Any]) -> None:
    work, _ = clone
    edit_rollout(work, "toledo/line-1", candidate=TO_CANARY)
    first = commit_all(work, "to canary")
    edit_rollout(work, "toledo/line-2", serving="surface-cnn@3", candidate=None)
    commit_all(work, "toledo/line-2 straight to production")

    whole = plan_revisions(work, "origin/main", "HEAD", NOW)
    step = plan_revisions(work, first, "HEAD", NOW)

    assert {line.key for line in whole.lines} == {"toledo/line-1", "toledo/line-2"}
    assert [line.key for line in step.lines] == ["toledo/line-2"]
    assert not step.ok
    [finding] = step.violations
    assert finding.message == (
        "toledo/line-2: surface-cnn@3 goes from shadow straight to production; "
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
