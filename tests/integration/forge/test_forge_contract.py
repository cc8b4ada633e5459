"""One behavioural contract, three forges: local, GitHub and Gitea must not differ."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from linefleet_core.forge import CommentOutcome, Forge, ForgeRefused, Merge, PullState
from linefleet_core.forge.gitea import GiteaForge
from linefleet_core.forge.github import GitHubForge
from linefleet_core.forge.local import LocalForge
from tests.integration.forge.fakeforge import OWNER, REPO, TOKEN, serve
from tests.integration.forge.gitrepos import origin_and_clone, push_branch

pytestmark = pytest.mark.integration


@dataclass
class Subject:
    forge: Forge
    push: Callable[[str], None]
    """Make a branch exist on the forge."""
    comments: Callable[[int], list[str]]
    merge: Callable[[int, str], str]
    """Merge a pull request as someone; returns the merge commit."""


@pytest.fixture(params=["local", "github", "gitea"])
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    if request.param == "local":
        _, clone = origin_and_clone(tmp_path)
        local = LocalForge.for_repo(clone.working_tree_dir)

        def push(branch: str) -> None:
            push_branch(clone, branch, {f"fleet/{branch}.yaml": "x: 1\n"})

        def merge(number: int, who: str) -> str:
            local.merge(number, merged_by=who)
            return str(local.record(number).merge_commit)

        comments = lambda n: [c.body for c in local.record(n).comments]  # noqa: E731
        yield Subject(local, push, comments, merge)
        return
    with serve(request.param) as fake:
        if request.param == "github":
            rest: Forge = GitHubForge(fake.base_url, OWNER, REPO, TOKEN, timeout=5)
        else:
            rest = GiteaForge(f"{fake.base_url}/api/v1", OWNER, REPO, TOKEN, timeout=5)
        yield Subject(
            rest,
            fake.branches.add,
            lambda n: [c["body"] for c in fake.comments.get(n, [])],
            lambda number, who: fake.merge(number, who.removeprefix("@")),
        )


def test_is_a_forge(subject: Subject) -> None:
    assert isinstance(subject.forge, Forge)


def test_open_find_get_and_update(subject: Subject) -> None:
    forge = subject.forge
    subject.push("fix")
    subject.push("other")
    assert forge.find_open("fix") is None

    pr = forge.open_pull_request("fix", "main", "Fix", "one", ["a"])
    other = forge.open_pull_request("other", "main", "Other", "")
    same = forge.open_pull_request("fix", "main", "Fix it", "two", ["b", "a"])

    assert pr.state is PullState.OPEN
    assert other.number != pr.number
    assert same.number == pr.number
    assert (same.title, same.body, same.head, same.base) == ("Fix it", "two", "fix", "main")
    assert sorted(same.labels) == ["a", "b"]
    assert forge.find_open("fix") == same
    assert forge.get(pr.number) == same


def test_unknown_number_is_refused_404(subject: Subject) -> None:
    with pytest.raises(ForgeRefused) as err:
        subject.forge.get(404)
    assert err.value.status == 404


def test_missing_branch_is_refused(subject: Subject) -> None:
    with pytest.raises(ForgeRefused):
        subject.forge.open_pull_request("never-pushed", "main", "t", "")


def test_one_sticky_comment_per_marker(subject: Subject) -> None:
    subject.push("c")
    pr = subject.forge.open_pull_request("c", "main", "t", "")
    outcomes = [subject.forge.upsert_comment(pr.number, "plan", t) for t in ("v1", "v2", "v2")]
    assert outcomes == [CommentOutcome.CREATED, CommentOutcome.UPDATED, CommentOutcome.UNCHANGED]
    assert subject.forge.upsert_comment(pr.number, "status", "ok") is CommentOutcome.CREATED
    assert subject.comments(pr.number) == [
        "<!-- linefleet:plan -->\nv2",
        "<!-- linefleet:status -->\nok",
    ]


def test_merge_of_names_who_merged_the_pull_request(subject: Subject) -> None:
    subject.push("promote")
    subject.push("other")
    pr = subject.forge.open_pull_request("promote", "main", "Promote", "")
    subject.forge.open_pull_request("other", "main", "Other", "")
    who = "Quality Lead <ql@acme.example>" if isinstance(subject.forge, LocalForge) else "@ql"
    sha = subject.merge(pr.number, who)
    assert subject.forge.merge_of(sha) == Merge(pr.number, who)
    assert subject.forge.get(pr.number).state is PullState.MERGED
    assert subject.forge.merge_of("f" * 40) is None  # not a merge commit of any pull request
