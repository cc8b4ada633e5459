"""The pull-request workflow, run locally step by step on a real fleet repository.

`.github/workflows/pr.yml` and the composite action it uses (`./base/.github/actions/check`)
run for real: the workspace holds `base/` (this source tree, from which the action installs
linefleet into a fresh virtualenv) and `change/` (a clone of a bare origin with the change on a
branch); the plan comment goes to a local GitHub REST server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import git
import pytest
import yaml

from linefleet.cli import main
from tests.integration.forge.fakeforge import OWNER, REPO, TOKEN, ForgeState, serve
from tests.integration.forge.workflow_runner import JobRun, run_job
from tests.support import freshvenv
from tests.support.minifleet import commit_all, edit_line, edit_rollout, init_repo, write_minifleet

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[3]

WORKFLOW = yaml.safe_load((ROOT / ".github" / "workflows" / "pr.yml").read_text())
MARKER = "<!-- linefleet:plan -->"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, freshvenv.Venv]:
    """The base branch's checkout (this source tree) and a fresh virtualenv for the action."""
    top = tmp_path_factory.mktemp("base")
    venv = freshvenv.create(top / "venv", freshvenv.dependency_links(top / "links"))
    return freshvenv.copy_source(ROOT, top / "base"), venv


@pytest.fixture
def clone(tmp_path: Path, base: tuple[Path, freshvenv.Venv]) -> Any:
    """`change/`: a clone of a bare origin whose main holds the mini fleet and its CODEOWNERS,
    beside `base/` in the runner's workspace."""
    seed = tmp_path / "seed"
    init_repo(seed)
    write_minifleet(seed)
    assert main(["codeowners", "--repo", str(seed)]) == 0
    commit_all(seed, "initial fleet")
    git.Repo.clone_from(seed, tmp_path / "origin.git", bare=True)
    (tmp_path / "workspace").mkdir()
    (tmp_path / "workspace" / "base").symlink_to(base[0])
    work = git.Repo.clone_from(tmp_path / "origin.git", tmp_path / "workspace" / "change")
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


def run_pr_job(
    work: Any, fake: ForgeState, head_sha: str, venv: freshvenv.Venv, fork: bool = False
) -> JobRun:
    ctx = {
        "github": {
            "base_ref": "main",
            "token": TOKEN,
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
    env = venv.env(
        LINEFLEET_GITHUB_API=fake.base_url,
        # setup-python's part: the interpreter to install into; offline, deps are linked in.
        LINEFLEET_PYTHON=str(venv.python),
        LINEFLEET_PIP_ARGS="--no-index --no-build-isolation --no-deps",
    )
    return run_job(WORKFLOW, ctx, Path(work.working_tree_dir).parent, env)


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


ACTION = "Check the change with the base branch's linefleet"
CHECK, COMMENT, FAIL = (
    f"{ACTION}/check",
    f"{ACTION}/Post the result as one updated comment",
    f"{ACTION}/Fail when the change is refused",
)


def test_valid_change_gets_one_comment_updated_on_every_push_also_from_a_fork(
    clone: Any, fake: ForgeState, base: tuple[Path, freshvenv.Venv]
) -> None:
    """`pull_request_target` gives the base's token also to a fork's pull request: nothing of
    the fork runs, so it gets the same comment (the second push comes from a fork)."""
    first = run_pr_job(clone, fake, push_change(clone, candidate=None), base[1])

    assert not first.failed, first.logs
    assert "validate: success, plan: success, codeowners: success" in first.logs[CHECK]
    assert f"linefleet from {base[0].resolve()}[control]" in first.logs[CHECK]
    assert (first.outcomes[COMMENT], first.outcomes[FAIL]) == ("success", "skipped")
    (comment,) = plan_comments(fake)
    assert "#### linefleet validate: :white_check_mark: valid" in comment
    assert "toledo/line-2" in comment
    assert "CODEOWNERS` is stale" not in comment

    second_sha = push_change(clone, name="Toledo line 2 (doors)", candidate=None)
    second = run_pr_job(clone, fake, second_sha, base[1], fork=True)

    assert not second.failed, second.logs
    assert second.outcomes[COMMENT] == "success"
    assert "#### linefleet validate: :white_check_mark: valid" in second.summary
    (comment,) = plan_comments(fake)
    assert f"<sub>for {second_sha}, checked by linefleet 0.1.0</sub>" in comment
    assert len(fake.comments[1]) == 1


def test_invalid_change_is_explained_then_fails_the_job(
    clone: Any, fake: ForgeState, base: tuple[Path, freshvenv.Venv]
) -> None:
    run = run_pr_job(clone, fake, push_change(clone, serving="surface-classifier@9"), base[1])

    assert run.failed
    assert "validate: failure" in run.logs[CHECK]
    assert run.outcomes[CHECK] == "success"  # the verdict is an output, so the comment follows
    assert run.outcomes[COMMENT] == "success"
    assert run.outcomes[FAIL] == "failure"
    assert "linefleet check: invalid" in run.logs[FAIL]
    (comment,) = plan_comments(fake)
    assert "#### linefleet validate: :x: invalid" in comment
    assert "fleet/sites/toledo/lines/line-2.yaml:" in comment
    assert "surface-classifier@9" in comment
    assert "#### linefleet validate: :x: invalid" in run.summary
