"""The pull-request workflow, run locally step by step on a real fleet repository.

The `linefleet` commands in `.github/workflows/pr.yml` run for real against a bare origin and
a clone with the change on a branch; the plan comment goes to a local GitHub REST server.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import git
import pytest
import yaml

from linefleet.cli import main
from tests.integration.forge.fakeforge import OWNER, REPO, TOKEN, ForgeState, serve
from tests.integration.forge.workflow_runner import JobRun, run_job
from tests.support.minifleet import commit_all, edit_line, edit_rollout, init_repo, write_minifleet

pytestmark = pytest.mark.integration

WORKFLOW = yaml.safe_load(
    (Path(__file__).resolve().parents[3] / ".github" / "workflows" / "pr.yml").read_text()
)
MARKER = "<!-- linefleet:plan -->"


@pytest.fixture
def clone(tmp_path: Path) -> Any:
    """A clone of a bare origin whose main holds the mini fleet and its CODEOWNERS."""
    seed = tmp_path / "seed"
    init_repo(seed)
    write_minifleet(seed)
    assert main(["codeowners", "--repo", str(seed)]) == 0
    commit_all(seed, "initial fleet")
    git.Repo.clone_from(seed, tmp_path / "origin.git", bare=True)
    work = git.Repo.clone_from(tmp_path / "origin.git", tmp_path / "work")
    with work.config_writer() as cfg:
        cfg.set_value("user", "name", "Engineer")
        cfg.set_value("user", "email", "engineer@example.com")
    return work


def push_change(work: Any, name: str | None = None, **rollout: Any) -> str:
    work.git.checkout("-B", "change", "origin/main")
    root = Path(work.working_tree_dir)
    edit_rollout(root, "toledo/line-2", **rollout)
    if name is not None:
        edit_line(root, "toledo/line-2", lambda doc: doc.__setitem__("name", name))
    work.git.commit("-am", "change toledo/line-2")
    work.git.push("-f", "origin", "change")
    return str(work.head.commit.hexsha)


def run_pr_job(work: Any, fake: ForgeState, head_sha: str, fork: bool = False) -> JobRun:
    ctx = {
        "github": {
            "base_ref": "main",
            "repository": f"{OWNER}/{REPO}",
            "event": {
                "pull_request": {
                    "number": 1,
                    "head": {
                        "sha": head_sha,
                        "repo": {"full_name": "someone/fork" if fork else f"{OWNER}/{REPO}"},
                    },
                }
            },
        },
        "secrets": {"GITHUB_TOKEN": TOKEN},
    }
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "LINEFLEET_GITHUB_API": fake.base_url,
    }
    return run_job(WORKFLOW, ctx, Path(work.working_tree_dir), env, frozenset({"install"}))


@pytest.fixture
def fake() -> Any:
    with serve("github") as state:
        state.branches.add("change")
        state.pulls[1] = {
            "number": 1, "head": "change", "base": "main", "title": "t", "body": "",
            "state": "open", "labels": [],
        }  # fmt: skip
        yield state


def plan_comments(fake: ForgeState) -> list[str]:
    return [c["body"] for c in fake.comments.get(1, []) if c["body"].startswith(MARKER)]


def test_valid_change_gets_one_comment_updated_on_every_push(clone: Any, fake: ForgeState) -> None:
    first = run_pr_job(clone, fake, push_change(clone, candidate=None))

    assert not first.failed, first.logs
    assert first.outcomes["validate"] == first.outcomes["plan"] == "success"
    (comment,) = plan_comments(fake)
    assert "#### linefleet validate: :white_check_mark: valid" in comment
    assert "toledo/line-2" in comment
    assert "CODEOWNERS` is stale" not in comment

    second_sha = push_change(clone, name="Toledo line 2 (doors)", candidate=None)
    second = run_pr_job(clone, fake, second_sha)

    assert not second.failed, second.logs
    (comment,) = plan_comments(fake)
    assert f"<sub>for {second_sha}</sub>" in comment
    assert len(fake.comments[1]) == 1


def test_invalid_change_is_explained_then_fails_the_job(clone: Any, fake: ForgeState) -> None:
    run = run_pr_job(clone, fake, push_change(clone, serving="surface-cnn@9"))

    assert run.failed
    assert run.outcomes["validate"] == "failure"
    assert run.outcomes["Post the plan as one updated comment"] == "success"
    assert run.outcomes["Fail when the change is invalid"] == "failure"
    (comment,) = plan_comments(fake)
    assert "#### linefleet validate: :x: invalid" in comment
    assert "fleet/sites/toledo/lines/line-2.yaml:" in comment
    assert "surface-cnn@9" in comment


def test_fork_pull_request_gets_the_plan_in_the_job_summary_only(
    clone: Any, fake: ForgeState
) -> None:
    run = run_pr_job(clone, fake, push_change(clone, candidate=None), fork=True)

    assert not run.failed, run.logs
    assert run.outcomes["Post the plan as one updated comment"] == "skipped"
    assert fake.comments.get(1, []) == []
    assert "#### linefleet validate: :white_check_mark: valid" in run.summary
