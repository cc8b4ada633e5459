"""What `plan` and `validate --base` keep in `.git/linefleet/` (`linefleet_forge.gitcache`:
parsed YAML by blob id, ONNX graph checks), in real git repositories: it changes how much is
parsed and read, never what a plan or a report says."""

from __future__ import annotations

import marshal
import pickle
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from linefleet_core.yamlsafe import blob_id
from linefleet_forge import gitcache
from linefleet_forge.gitrepo import GitObjects
from reconciler.review import render
from reconciler.review.changeplan import Plan
from reconciler.review.check import Report, validate
from reconciler.review.graphcheck import checker_version
from reconciler.review.revisions import plan_revisions
from tests.support.minifleet import (
    QUIET,
    TO_CANARY,
    commit_all,
    committed_minifleet,
    edit_line,
    edit_rollout,
    edit_yaml,
    line_file,
    model_file,
)

pytestmark = pytest.mark.integration
T = TypeVar("T")


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    """The mini fleet with one committed change on top of `base`: line-1 to canary."""
    root = committed_minifleet(tmp_path / "fleet")
    commit_all(root, "base")
    git(root, "tag", "base")
    edit_rollout(root, "toledo/line-1", candidate=TO_CANARY)
    commit_all(root, "toledo/line-1 to canary")
    return root


def git(root: Path, *args: str) -> list[str]:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    return proc.stdout.splitlines()


def cache_file(root: Path) -> Path:
    return gitcache.folder(GitObjects.open(root), gitcache.PARSED) / gitcache.DOCUMENTS


def plan_of(root: Path) -> tuple[str, list[str]]:
    plan: Plan = plan_revisions(root, "base", "HEAD", QUIET)
    return render.markdown(plan), [str(f) for f in (*plan.errors, *plan.violations)]


def report_of(root: Path) -> list[str]:
    report: Report = validate(root, "base", QUIET)
    return [str(f) for f in report.findings]


def uncached(root: Path, run: Callable[[Path], T]) -> T:
    """What `run` gives with no cache (and none left behind)."""
    cache_file(root).unlink(missing_ok=True)
    found = run(root)
    cache_file(root).unlink()
    return found


def test_the_cache_holds_every_file_by_its_git_blob_id_and_a_second_run_says_the_same(
    fleet: Path,
) -> None:
    assert not cache_file(fleet).exists()
    first_plan, first_report = plan_of(fleet), report_of(fleet)

    objects = GitObjects.open(fleet)
    kept = gitcache.load_parsed(objects).known
    head_blobs = {
        row.split()[2] for row in git(fleet, "ls-tree", "-r", "HEAD", "fleet", "taxonomies")
    }
    base_only = {row.split()[2] for row in git(fleet, "ls-tree", "-r", "base", "fleet")}
    assert head_blobs <= kept.keys() and base_only <= kept.keys()
    assert len(kept) == len(head_blobs | base_only)  # both revisions, each file once
    stamp = cache_file(fleet).stat().st_mtime_ns

    assert (plan_of(fleet), report_of(fleet)) == (first_plan, first_report)
    assert cache_file(fleet).stat().st_mtime_ns == stamp  # all hits: nothing to write
    assert "surface-classifier@3" in first_plan[0] and first_plan[1] == []


def test_a_changed_file_is_parsed_again(fleet: Path) -> None:
    assert report_of(fleet) == []  # (cached now)
    # The working tree (read by validate --base) gets a line whose cameras are not a list.
    edit_line(fleet, "toledo/line-2", lambda doc: doc.update(cameras="not a list"))
    cached = report_of(fleet)
    assert any("line-2.yaml" in f and "cameras" in f for f in cached)
    assert cached == uncached(fleet, report_of)
    edited = blob_id(line_file(fleet, "toledo/line-2").read_bytes())
    report_of(fleet)
    assert edited in gitcache.load_parsed(GitObjects.open(fleet)).known


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"not a marshal dump at all",
        marshal.dumps({"format": "an older parser", "content": {}}),
        "truncated",
        "stale",
    ],
    ids=["empty", "garbage", "other-format", "truncated", "stale-version"],
)
def test_an_unusable_cache_is_ignored_and_replaced(fleet: Path, garbage: bytes | str) -> None:
    expected_plan, expected_report = uncached(fleet, plan_of), uncached(fleet, report_of)
    plan_of(fleet)
    path = cache_file(fleet)
    good = path.read_bytes()
    if garbage == "truncated":
        garbage = good[: len(good) // 2]
    elif garbage == "stale":  # what an older linefleet kept: every document poisoned
        content = marshal.loads(good)["content"]
        poisoned = {oid: {"kind": "Line", "apiVersion": "bogus"} for oid in content}
        garbage = marshal.dumps({"format": "0" * 64, "content": poisoned})
    assert isinstance(garbage, bytes)
    path.write_bytes(garbage)

    assert plan_of(fleet) == expected_plan
    path.write_bytes(garbage)
    assert report_of(fleet) == expected_report
    assert (
        gitcache.load_parsed(GitObjects.open(fleet)).known.keys()
        == marshal.loads(good)["content"].keys()
    )


def test_graph_checks_are_kept_by_contract_and_digest_and_say_the_same(fleet: Path) -> None:
    def smaller_input(doc: Any) -> None:
        doc["versions"][0]["input"]["shape"] = [1, 3, 32, 32]  # the graph's is 64 x 64

    edit_yaml(model_file(fleet), smaller_input)
    first = report_of(fleet)
    assert any("dim 2: graph 64, declared 32" in f for f in first)
    kept = gitcache.folder(GitObjects.open(fleet), "graph-checks") / "results.pickle"
    stored = pickle.loads(kept.read_bytes())["content"]
    assert len(stored) == 3  # one per catalogue version whose artifact is in the repository

    assert report_of(fleet) == first  # from the cache: the graphs are not read again
    for garbage in (b"garbage", pickle.dumps({"format": "0" * 64, "content": {}})):
        kept.write_bytes(garbage)
        assert report_of(fleet) == first
    # A poisoned cache of another checker changes nothing either.
    poisoned = dict.fromkeys(stored, ())
    gitcache.write_pickle(kept, "0" * 64, poisoned)
    assert report_of(fleet) == first
    # (A hit is what the report says: the graphs are not read when the cache has them.)
    version = checker_version()
    assert version is not None
    gitcache.write_pickle(kept, version, poisoned)
    assert [f for f in report_of(fleet) if "dim 2" in f] == []
