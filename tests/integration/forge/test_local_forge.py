"""The local forge against real git repositories (a bare origin and clones of it)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import git
import pytest

from linefleet_core.errors import PermanentError
from linefleet_core.forge import ForgeRefused, PullState, forge_from_spec
from linefleet_core.forge.local import LocalForge
from tests.integration.forge.gitrepos import commit, configure, origin_and_clone, push_branch

pytestmark = pytest.mark.integration

PROTECT_MAIN = """#!/bin/sh
while read old new ref; do
  if [ "$ref" = refs/heads/main ]; then echo 'main is protected' >&2; exit 1; fi
done
"""


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Any, LocalForge]:
    origin, clone = origin_and_clone(tmp_path)
    forge = forge_from_spec("local", clone.working_tree_dir)
    assert isinstance(forge, LocalForge)
    return origin, clone, forge


def test_records_live_in_the_origin_and_every_clone_sees_them(
    setup: tuple[Path, Any, LocalForge], tmp_path: Path
) -> None:
    origin, clone, forge = setup
    push_branch(clone, "rollback/toledo-line-3", {"fleet/a.yaml": "a: 1\n"})

    pr = forge.open_pull_request("rollback/toledo-line-3", "main", "Roll back", "why", ["rollback"])

    record = origin / "linefleet-forge" / "pulls" / "1.json"
    assert pr.url == str(record)
    doc = json.loads(record.read_text())
    assert doc["head"] == "rollback/toledo-line-3"
    assert doc["state"] == "open"
    assert doc["labels"] == ["rollback"]
    assert doc["created"].endswith("Z")
    git.Repo.clone_from(origin, tmp_path / "other")
    assert LocalForge.for_repo(tmp_path / "other").find_open("rollback/toledo-line-3") == pr
    assert not (Path(clone.working_tree_dir) / "linefleet-forge").exists()


def test_open_is_idempotent_per_head_branch(setup: tuple[Path, Any, LocalForge]) -> None:
    _, clone, forge = setup
    push_branch(clone, "promote/cnn-5", {"fleet/a.yaml": "a: 1\n"})
    first = forge.open_pull_request("promote/cnn-5", "main", "Promote", "v1", ["promotion"])
    second = forge.open_pull_request("promote/cnn-5", "main", "Promote cnn@5", "v2", ["trainer"])

    assert second.number == first.number == 1
    assert (second.title, second.body) == ("Promote cnn@5", "v2")
    assert second.labels == ("promotion", "trainer")
    assert [p.pr.number for p in forge.list()] == [1]


def test_unpushed_branch_and_same_branch_are_refused(setup: tuple[Path, Any, LocalForge]) -> None:
    _, clone, forge = setup
    clone.git.checkout("-b", "only-local")
    with pytest.raises(ForgeRefused, match=r"branch 'only-local' does not exist .*push it first"):
        forge.open_pull_request("only-local", "main", "t", "")
    with pytest.raises(ForgeRefused, match="head and base are both 'main'"):
        forge.open_pull_request("main", "main", "t", "")
    assert forge.list() == []


def test_sticky_comment(setup: tuple[Path, Any, LocalForge]) -> None:
    _, clone, forge = setup
    push_branch(clone, "b", {"fleet/a.yaml": "a: 1\n"})
    pr = forge.open_pull_request("b", "main", "t", "")
    forge.upsert_comment(pr.number, "plan", "Plan: 1 to change")
    forge.upsert_comment(pr.number, "plan", "Plan: 2 to change")
    forge.upsert_comment(pr.number, "validate", "valid")
    comments = forge.record(pr.number).comments
    assert [(c.id, c.body) for c in comments] == [
        (1, "<!-- linefleet:plan -->\nPlan: 2 to change"),
        (2, "<!-- linefleet:validate -->\nvalid"),
    ]


def test_merge_makes_a_merge_commit_on_the_origin(setup: tuple[Path, Any, LocalForge]) -> None:
    origin, clone, forge = setup
    main_before = git.Repo(origin).commit("main").hexsha
    head_sha = push_branch(clone, "change", {"fleet/new.yaml": "new: true\n"})
    pr = forge.open_pull_request("change", "main", "Add new", "")

    merged = forge.merge(pr.number)

    assert merged.state is PullState.MERGED
    tip = git.Repo(origin).commit("main")
    assert [p.hexsha for p in tip.parents] == [main_before, head_sha]
    assert str(tip.message).startswith("Merge pull request #1 from change")
    assert (tip.tree / "fleet/new.yaml").data_stream.read() == b"new: true\n"
    record = forge.record(pr.number)
    assert record.merge_commit == tip.hexsha
    assert record.merged_at is not None
    assert forge.find_open("change") is None
    with pytest.raises(ForgeRefused, match="#1 is merged"):
        forge.merge(pr.number)


def test_conflicting_merge_is_refused_and_changes_nothing(
    setup: tuple[Path, Any, LocalForge],
) -> None:
    origin, clone, forge = setup
    push_branch(clone, "one", {"fleet/policy.yaml": "kind: Policy\n# one\n"})
    push_branch(clone, "two", {"fleet/policy.yaml": "kind: Policy\n# two\n"})
    forge.merge(forge.open_pull_request("one", "main", "One", "").number)
    main_after_one = git.Repo(origin).commit("main").hexsha
    two = forge.open_pull_request("two", "main", "Two", "")

    with pytest.raises(ForgeRefused, match=r"#2 \(two into main\) does not merge cleanly"):
        forge.merge(two.number)

    assert git.Repo(origin).commit("main").hexsha == main_after_one
    assert forge.get(two.number).state is PullState.OPEN


def test_rejected_push_is_an_error_and_the_pr_stays_open(
    setup: tuple[Path, Any, LocalForge],
) -> None:
    origin, clone, forge = setup
    push_branch(clone, "change", {"fleet/new.yaml": "x: 1\n"})
    pr = forge.open_pull_request("change", "main", "t", "")
    main_before = git.Repo(origin).commit("main").hexsha
    hook = origin / "hooks" / "pre-receive"
    hook.write_text(PROTECT_MAIN)
    hook.chmod(0o755)

    with pytest.raises(ForgeRefused, match=r"merging #1: git push origin .* (rejected|failed)"):
        forge.merge(pr.number)

    assert git.Repo(origin).commit("main").hexsha == main_before
    assert forge.get(pr.number).state is PullState.OPEN


def test_close_then_reopen_makes_a_new_pull_request(setup: tuple[Path, Any, LocalForge]) -> None:
    _, clone, forge = setup
    push_branch(clone, "b", {"fleet/a.yaml": "a: 1\n"})
    first = forge.open_pull_request("b", "main", "t", "")
    closed = forge.close(first.number)
    assert closed.state is PullState.CLOSED
    assert forge.record(first.number).closed_at is not None
    assert forge.find_open("b") is None
    with pytest.raises(ForgeRefused, match="is closed"):
        forge.merge(first.number)
    assert forge.open_pull_request("b", "main", "t", "").number == 2


def test_without_an_origin_the_repository_itself_is_the_forge(tmp_path: Path) -> None:
    repo = git.Repo.init(tmp_path / "solo", initial_branch="main")
    configure(repo)
    commit(repo, {"fleet/policy.yaml": "kind: Policy\n"}, "initial")
    repo.git.checkout("-b", "change")
    commit(repo, {"fleet/new.yaml": "x: 1\n"}, "change")
    repo.git.checkout("main")
    forge = LocalForge.for_repo(tmp_path / "solo" / "fleet")
    pr = forge.open_pull_request("change", "main", "t", "")
    assert Path(pr.url).is_relative_to(tmp_path / "solo" / ".git" / "linefleet-forge")

    (tmp_path / "solo" / "fleet" / "policy.yaml").write_text("dirty\n")
    with pytest.raises(ForgeRefused, match="uncommitted changes on main"):
        forge.merge(pr.number)
    repo.git.checkout("--", "fleet/policy.yaml")

    forge.merge(pr.number)  # main is checked out: merged in place
    assert (tmp_path / "solo" / "fleet" / "new.yaml").read_text() == "x: 1\n"
    assert len(repo.head.commit.parents) == 2


def test_concurrent_writers_get_distinct_numbers(setup: tuple[Path, Any, LocalForge]) -> None:
    origin, clone, _ = setup
    branches = [f"b{i}" for i in range(6)]
    for name in branches:
        push_branch(clone, name, {f"fleet/{name}.yaml": "x: 1\n"})
    numbers: list[int] = []

    def open_one(name: str) -> None:
        forge = LocalForge.for_repo(clone.working_tree_dir)
        numbers.append(forge.open_pull_request(name, "main", name, "").number)

    threads = [threading.Thread(target=open_one, args=(b,)) for b in branches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(numbers) == [1, 2, 3, 4, 5, 6]
    store = origin / "linefleet-forge" / "pulls"
    assert sorted(p.name for p in store.iterdir() if p.name != ".lock") == [
        f"{n}.json" for n in (1, 2, 3, 4, 5, 6)
    ]  # and no temp files left behind


def test_corrupt_record_and_unknown_number(setup: tuple[Path, Any, LocalForge]) -> None:
    origin, clone, forge = setup
    push_branch(clone, "b", {"fleet/a.yaml": "a: 1\n"})
    forge.open_pull_request("b", "main", "t", "")
    with pytest.raises(ForgeRefused, match="no pull request #7") as err:
        forge.get(7)
    assert err.value.status == 404
    (origin / "linefleet-forge" / "pulls" / "1.json").write_text("{not json")
    with pytest.raises(PermanentError, match=r"pulls/1.json: corrupt pull request record"):
        forge.get(1)
