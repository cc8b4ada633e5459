"""What `plan` keeps about its base commit (`.git/linefleet/revision-checks/`) and about
artifact blobs (`artifact-digests/`), in real git repositories: a second plan from the same
base reads them instead of checking the base again, and says the same thing."""

from __future__ import annotations

import pickle
import subprocess
from pathlib import Path
from typing import Any

import pytest

from linefleet_forge import gitcache
from linefleet_forge.gitrepo import GitObjects
from reconciler.review import render
from reconciler.review.revisions import _checks_version, plan_revisions
from tests.support.minifleet import (
    QUIET,
    TO_CANARY,
    commit_all,
    committed_minifleet,
    edit_rollout,
    edit_yaml,
    model_file,
)

pytestmark = pytest.mark.integration


def git(root: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def kept_findings(root: Path) -> Path:
    return gitcache.folder(GitObjects.open(root), "revision-checks") / "findings.pickle"


def kept_digests(root: Path) -> Path:
    return gitcache.folder(GitObjects.open(root), "artifact-digests") / "digests.pickle"


def plan_text(root: Path) -> str:
    return render.markdown(plan_revisions(root, "base", "HEAD", QUIET))


def uncached(root: Path) -> str:
    for path in (kept_findings(root), kept_digests(root)):
        path.unlink(missing_ok=True)
    text = plan_text(root)
    for path in (kept_findings(root), kept_digests(root)):
        path.unlink(missing_ok=True)
    return text


@pytest.fixture
def broken_base(tmp_path: Path) -> Path:
    """A base whose line-2 serves an unknown model (a cross-file error) and whose artifact
    of version 1 differs from its catalogue entry; HEAD sends line-1 to canary."""
    root = committed_minifleet(tmp_path / "fleet")

    def unknown_model(doc: Any) -> None:
        doc["rollout"]["serving"] = "no-such-model@1"

    line = root / "fleet/sites/toledo/lines/line-2.yaml"
    edit_yaml(line, unknown_model)
    (root / "artifacts/surface-classifier-1.onnx").write_bytes(b"not the catalogued model")
    commit_all(root, "base")
    git(root, "tag", "base")
    edit_rollout(root, "toledo/line-1", candidate=TO_CANARY)
    commit_all(root, "toledo/line-1 to canary")
    return root


def test_the_base_commit_is_checked_once_and_the_plan_says_the_same(broken_base: Path) -> None:
    expected = uncached(broken_base)
    assert "The base revision has 2 validation error(s) itself" in expected

    assert plan_text(broken_base) == expected  # writes both caches
    base = git(broken_base, "rev-parse", "base")
    kept = pickle.loads(kept_findings(broken_base).read_bytes())["content"]
    assert list(kept) == [f"{base}:"]
    assert sorted(f.code for f in kept[f"{base}:"]) == ["artifact", "reference"]
    digests = pickle.loads(kept_digests(broken_base).read_bytes())["content"]
    assert len(digests) == 3  # one per artifact blob of base (HEAD has the same ones)

    stamp = kept_findings(broken_base).stat().st_mtime_ns
    assert plan_text(broken_base) == expected
    assert kept_findings(broken_base).stat().st_mtime_ns == stamp  # a hit: nothing written


def test_a_hit_is_what_the_plan_counts_and_another_version_is_ignored(broken_base: Path) -> None:
    expected = uncached(broken_base)
    plan_text(broken_base)
    path = kept_findings(broken_base)
    kept = pickle.loads(path.read_bytes())["content"]
    # Kept by another checking code (an older linefleet): ignored, and replaced.
    gitcache.write_pickle(path, "0" * 64, {key: [] for key in kept})
    assert plan_text(broken_base) == expected
    # Kept by this code: used as it is (so the code version must cover all that decides it).
    version = _checks_version()
    assert version is not None
    gitcache.write_pickle(path, version, {key: [] for key in kept})
    assert "validation error(s) itself" not in plan_text(broken_base)
    for garbage in (b"", b"garbage"):
        path.write_bytes(garbage)
        assert plan_text(broken_base) == expected


def test_an_artifact_changed_in_head_is_digested_apart_from_the_base_one(
    broken_base: Path,
) -> None:
    """The same path, another blob: each revision's artifact finding is its own."""
    plan_text(broken_base)  # the base's artifact digests are kept
    (broken_base / "artifacts/surface-classifier-2.onnx").write_bytes(b"replaced in head")
    commit_all(broken_base, "replace version 2's file")
    expected = uncached(broken_base)
    assert "The base revision has 2 validation error(s) itself" in expected
    assert "head is invalid" in expected and "versions[1].artifact" in expected
    plan_text(broken_base)
    assert plan_text(broken_base) == expected


def test_artifacts_inside_fleet_are_judged_from_its_listing(tmp_path: Path) -> None:
    """An artifact under fleet/ is found from the listing of the fleet's files; a folder
    there is still refused as one."""
    root = committed_minifleet(tmp_path / "fleet")
    (root / "fleet/artifacts").mkdir()
    (root / "artifacts/surface-classifier-1.onnx").rename(root / "fleet/artifacts/v1.onnx")

    def move(doc: Any) -> None:
        doc["versions"][0]["artifact"]["url"] = "file://fleet/artifacts/v1.onnx"
        doc["versions"][1]["artifact"]["url"] = "file://fleet/sites"

    edit_yaml(model_file(root), move)
    commit_all(root, "base")
    git(root, "tag", "base")
    text = uncached(root)
    assert "versions[0].artifact" not in text
    assert "versions[1].artifact.url: fleet/sites: a directory, not a regular file" in text
    assert plan_text(root) == text
