"""`propose`: branch from the current base, one commit, push, pull request (real git)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import git
import pytest

from linefleet_core.errors import UsageError
from linefleet_forge import ForgeRefused
from linefleet_forge.local import LocalForge
from linefleet_forge.proposal import Proposal, propose, remote_url
from tests.integration.forge.gitrepos import commit, origin_and_clone

pytestmark = pytest.mark.integration

ROLLBACK = Proposal(
    branch="linefleet/rollback/toledo-line-3",
    base="main",
    message="Roll back toledo/line-3 to surface-classifier@4",
    title="Roll back toledo/line-3",
    body="The canary failed its health gates.",
    labels=("rollback",),
    author=("linefleet reconciler", "reconciler@linefleet.invalid"),
)


def write(rel: str, text: str) -> Any:
    def edit(root: Path) -> None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)

    return edit


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Any, LocalForge]:
    origin, clone = origin_and_clone(tmp_path)
    return origin, clone, LocalForge.for_repo(clone.working_tree_dir)


def test_proposes_a_branch_and_a_pull_request(setup: tuple[Path, Any, LocalForge]) -> None:
    origin, clone, forge = setup
    remote = remote_url(clone.working_tree_dir)
    assert Path(remote) == origin

    done = propose(remote, ROLLBACK, write("fleet/policy.yaml", "kind: Policy\n# x\n"), forge)

    assert done is not None
    assert done.pushed
    tip = git.Repo(origin).commit(ROLLBACK.branch)
    assert tip.hexsha == done.commit
    assert tip.parents[0].hexsha == git.Repo(origin).commit("main").hexsha
    assert tip.message.strip() == ROLLBACK.message
    assert (tip.author.name, tip.author.email) == ROLLBACK.author
    assert (done.pull.number, done.pull.head, done.pull.labels) == (
        1,
        ROLLBACK.branch,
        ("rollback",),
    )
    assert not clone.is_dirty(untracked_files=True)  # the caller's tree is untouched


def test_proposing_the_same_change_twice_changes_nothing(
    setup: tuple[Path, Any, LocalForge],
) -> None:
    origin, _, forge = setup
    edit = write("fleet/x.yaml", "x: 1\n")
    first = propose(str(origin), ROLLBACK, edit, forge)
    second = propose(str(origin), ROLLBACK, edit, forge)

    assert first is not None
    assert second is not None
    assert not second.pushed
    assert second.commit == first.commit == git.Repo(origin).commit(ROLLBACK.branch).hexsha
    assert second.pull.number == first.pull.number
    assert len(forge.list()) == 1


def test_a_moved_base_recreates_the_branch_and_updates_the_pr(
    setup: tuple[Path, Any, LocalForge],
) -> None:
    origin, clone, forge = setup
    edit = write("fleet/x.yaml", "x: 1\n")
    first = propose(str(origin), ROLLBACK, edit, forge)
    commit(clone, {"fleet/other.yaml": "y: 2\n"}, "someone else's change")
    clone.git.push("origin", "HEAD:main")

    second = propose(str(origin), ROLLBACK, edit, forge)

    assert first is not None
    assert second is not None
    assert second.pushed
    tip = git.Repo(origin).commit(ROLLBACK.branch)
    assert tip.parents[0].hexsha == git.Repo(origin).commit("main").hexsha
    assert second.pull.number == first.pull.number
    assert forge.merge(second.pull.number).state.value == "merged"  # and it merges cleanly


def test_no_change_means_no_proposal(setup: tuple[Path, Any, LocalForge]) -> None:
    origin, _, forge = setup
    assert (
        propose(str(origin), ROLLBACK, write("fleet/policy.yaml", "kind: Policy\n"), forge) is None
    )
    assert forge.list() == []
    assert ROLLBACK.branch not in [h.name for h in git.Repo(origin).heads]


def test_a_rejected_push_is_an_error_and_opens_nothing(setup: tuple[Path, Any, LocalForge]) -> None:
    origin, _, forge = setup
    hook = origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'no bots here' >&2\nexit 1\n")
    hook.chmod(0o755)

    with pytest.raises(ForgeRefused, match="proposing linefleet/rollback/toledo-line-3: git push"):
        propose(str(origin), ROLLBACK, write("fleet/x.yaml", "x: 1\n"), forge)
    assert forge.list() == []


def test_unknown_base_is_a_usage_error(setup: tuple[Path, Any, LocalForge]) -> None:
    origin, _, forge = setup
    bad = Proposal("b", "release", "m", "t", "")
    with pytest.raises(UsageError, match=f"cannot clone {origin} at release"):
        propose(str(origin), bad, write("x", "y"), forge)
