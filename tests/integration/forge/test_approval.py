"""Who approved a change (`linefleet_forge.approval`), against real git and the local forge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import git
import pytest

from linefleet.cli import main
from linefleet.report.timeline import read_timeline
from linefleet_forge.approval import approval_of, promoted_in
from linefleet_forge.local import LocalForge
from tests.integration.forge.gitrepos import commit, origin_and_clone, push_branch
from tests.support.server import free_port

LINE = "fleet/sites/toledo/lines/line-1.yaml"


def line(serving: str) -> str:
    return f"kind: Line\nid: line-1\nsite: toledo\nrollout:\n  serving: '{serving}'\n"


@pytest.fixture
def merged(tmp_path: Path) -> tuple[Any, str]:
    """A clone whose main has a promotion merged through the local forge by the quality lead."""
    _, clone = origin_and_clone(tmp_path)
    push_branch(clone, "start", {LINE: line("surface-classifier@2")})
    forge = LocalForge.for_repo(clone.working_tree_dir)
    first = forge.open_pull_request("start", "main", "Add toledo/line-1", "")
    forge.merge(first.number, merged_by="Ops Bot <ops@acme.example>")
    clone.git.fetch("origin")
    push_branch(clone, "promote", {LINE: line("surface-classifier@3")})
    pr = forge.open_pull_request("promote", "main", "Promote surface-classifier@3", "evidence")
    forge.merge(pr.number, merged_by="Quality Lead <ql@acme.example>")
    clone.git.checkout("main")
    clone.git.pull("origin", "main")
    return clone, str(clone.head.commit.hexsha)


def test_the_forge_record_names_who_merged_the_pull_request(merged: tuple[Any, str]) -> None:
    clone, tip = merged
    approval = approval_of(clone, tip)
    assert (approval.by, approval.via, approval.pull) == (
        "Quality Lead <ql@acme.example>",
        "pull request #2 (local forge)",
        2,
    )
    assert approval.commit == tip


def test_without_a_forge_record_the_committer_approved(tmp_path: Path) -> None:
    repo = git.Repo.init(tmp_path / "solo", initial_branch="main")
    who = git.Actor("Line Engineer", "le@acme.example")
    (tmp_path / "solo" / "a").write_text("a")
    repo.index.add(["a"])
    first = repo.index.commit("direct", author=who, committer=who)
    assert (approval_of(repo, first.hexsha).by, approval_of(repo, first.hexsha).via) == (
        "Line Engineer <le@acme.example>",
        "commit",
    )
    repo.git.checkout("-b", "side")
    (tmp_path / "solo" / "b").write_text("b")
    repo.index.add(["b"])
    repo.index.commit("side", author=who, committer=who)
    repo.git.checkout("main")
    env = {"GIT_COMMITTER_NAME": "Plant Manager", "GIT_COMMITTER_EMAIL": "pm@acme.example"}
    repo.git.merge(
        "--no-ff",
        "-m",
        "merge side",
        "side",
        env={**env, "GIT_AUTHOR_NAME": "x", "GIT_AUTHOR_EMAIL": "x@y"},
    )
    approval = approval_of(repo, repo.head.commit.hexsha)
    assert (approval.by, approval.via, approval.pull) == (
        "Plant Manager <pm@acme.example>",
        "merge commit",
        None,
    )


def test_promoted_in_finds_the_merge_that_made_a_version_serve(merged: tuple[Any, str]) -> None:
    clone, tip = merged
    assert promoted_in(clone, "HEAD", "surface-classifier@3") == tip
    assert promoted_in(clone, "HEAD", "surface-classifier@2") == str(
        clone.head.commit.parents[0].hexsha
    )
    assert promoted_in(clone, "HEAD", "surface-classifier@9") is None


def test_the_rollout_timeline_names_the_approver(merged: tuple[Any, str]) -> None:
    clone, _ = merged
    newest = read_timeline(clone)[0]
    assert newest.changes == ("toledo/line-1: serving surface-classifier@2 → surface-classifier@3",)
    assert newest.approved_by == "Quality Lead <ql@acme.example> via pull request #2 (local forge)"


def test_pr_merge_records_the_git_identity_of_whoever_merges(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, clone = origin_and_clone(tmp_path)
    push_branch(clone, "change", {LINE: line("surface-classifier@2")})
    LocalForge.for_repo(clone.working_tree_dir).open_pull_request("change", "main", "t", "")
    assert main(["pr", "merge", "1", "--repo", clone.working_tree_dir]) == 0
    assert main(["pr", "show", "1", "--repo", clone.working_tree_dir]) == 0
    assert " by Test Engineer <test@linefleet.invalid>\n" in capsys.readouterr().out
    commit(clone, {"x": "x"}, "unrelated")  # the clone is usable afterwards


def test_github_merge_information_names_the_approver_and_an_outage_falls_back_to_git(
    tmp_path: Path,
) -> None:
    from linefleet_forge.github import GitHubForge
    from tests.integration.forge.fakeforge import OWNER, REPO, TOKEN, serve

    _, clone = origin_and_clone(tmp_path)
    tip = str(clone.head.commit.hexsha)
    with serve("github") as fake:
        fake.branches.add("promote")
        forge = GitHubForge(fake.base_url, OWNER, REPO, TOKEN, timeout=5)
        pr = forge.open_pull_request("promote", "main", "Promote", "")
        fake.pulls[pr.number].update(state="closed", merge_commit_sha=tip, merged_by="ql")
        approval = approval_of(clone, tip, forge)
    assert (approval.by, approval.via, approval.pull) == ("@ql", "pull request #1 (github)", 1)

    down = GitHubForge(f"http://127.0.0.1:{free_port()}", OWNER, REPO, TOKEN, 2)  # nobody there
    approval = approval_of(clone, tip, down)
    assert approval.by == "Test Engineer <test@linefleet.invalid>"
    assert approval.via.startswith("commit (github unreachable: ")
