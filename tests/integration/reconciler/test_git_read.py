"""A fleet read from git objects (`GitObjects.fleet_files`, streamed from `git cat-file`, its
documents parsed ahead in a worker process): the same files, refusals, fleet and findings, in
the same order, as reading without parsing ahead, and as the working tree says."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from factory_sim import fleetgen
from linefleet_core import forked
from linefleet_core.errors import UsageError
from linefleet_core.spec import DirectorySource, too_large
from linefleet_core.validation import load_checked
from linefleet_core.yamlsafe import MAX_FILE_BYTES, ParsedBlobs
from linefleet_forge import catfile
from linefleet_forge.gitrepo import GitObjects, GitSource
from reconciler.review import render
from reconciler.review.check import validate
from reconciler.review.revisions import plan_revisions
from reconciler.service.publish import load_revision
from tests.support.minifleet import QUIET, commit_all, init_repo, write_minifleet

pytestmark = pytest.mark.integration


def test_an_oversized_file_is_refused_from_git_as_from_the_working_tree(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet"
    write_minifleet(fleet)
    huge = fleet / "fleet" / "sites" / "toledo" / "lines" / "huge.yaml"
    huge.write_bytes(b"# padding\n" * (MAX_FILE_BYTES // 10 + 1))
    init_repo(fleet)
    sha = commit_all(fleet, "a file over the limit")
    objects = GitObjects.open(fleet)

    files = dict(objects.fleet_files(sha, ""))

    assert files == dict(DirectorySource(fleet).files())
    assert files["fleet/sites/toledo/lines/huge.yaml"] == too_large(huge.stat().st_size)
    assert max(len(blob) for blob in objects.blobs.values()) <= MAX_FILE_BYTES  # not kept


BROKEN = {  # path -> what is done to it
    "fleet/sites/dresden/lines/line-7.yaml": lambda raw: raw.replace(
        b"taxonomy:", b"taxonomy: [", 1
    ),
    "fleet/sites/toledo/devices/toledo-edge-3.yaml": lambda raw: raw + b"colour: red\n",
    "fleet/sites/dresden/lines/line-9.yaml": lambda raw: raw.replace(
        b"product:", b"product: \xff", 1
    ),
    "fleet/sites/toledo/lines/line-4.yaml": lambda raw: b"",
}


@pytest.fixture(scope="module")
def big_fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated fleet of more files than `catfile.WORKER_FROM`, a few of them broken, and one
    the quick reader leaves to libyaml (flow style)."""
    repo = tmp_path_factory.mktemp("git-read") / "fleet"
    shape = fleetgen.FleetShape(
        sites=2, lines_per_site=150, cameras_per_line=1, devices_per_site=150
    )
    files = fleetgen.generate(shape)
    assert len(files) > catfile.WORKER_FROM
    for path, damage in BROKEN.items():
        files[path] = damage(files[path])
    flow = "fleet/sites/dresden/lines/line-3.yaml"  # an escape: libyaml reads it
    files[flow] = files[flow].replace(b"name: Dresden line 3", b'name: "Dresden \\"line\\" 3"')
    fleetgen.write(files, repo)
    init_repo(repo)
    commit_all(repo, "generated, a few files broken")
    return repo


def test_documents_parsed_ahead_load_the_same_fleet_and_findings(big_fleet: Path) -> None:
    objects = GitObjects.open(big_fleet)
    commit = objects.commit("HEAD")
    ahead = ParsedBlobs()

    spec, findings = load_checked(GitSource(commit, "", objects, parsed=ahead), parsed=ahead)
    plain, plain_findings = load_checked(GitSource(commit, "", GitObjects.open(big_fleet)))

    assert len(ahead.ahead) >= catfile.WORKER_FROM
    assert ahead.used.keys() == ahead.ahead.keys()  # every document that parses, parsed ahead
    assert findings == plain_findings  # the same problems, words and order
    assert {f.path for f in findings if f.severity == "error"} >= set(BROKEN)
    for table in ("sites", "lines", "devices", "models", "taxonomies"):
        assert getattr(spec, table) == getattr(plain, table), table
    assert spec.policy == plain.policy
    assert [d.path for d in spec.docs.values()] == [d.path for d in plain.docs.values()]
    working_tree, tree_findings = load_checked(DirectorySource(big_fleet))
    assert sorted(tree_findings) == sorted(findings)
    assert working_tree.lines == spec.lines


def test_a_missing_object_stops_the_load_with_a_usage_error(
    big_fleet: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "fleet"
    shutil.copytree(big_fleet, copy)  # (committed loose: one object can go)
    oid = subprocess.run(
        ["git", "rev-parse", "HEAD:fleet/sites/toledo/lines/line-60.yaml"],
        cwd=copy, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    (copy / ".git" / "objects" / oid[:2] / oid[2:]).unlink()

    with pytest.raises(UsageError, match=f"git cat-file: object {oid} is missing in "):
        load_revision(copy, "HEAD", parsed=ParsedBlobs())


def test_plan_and_validate_base_parse_the_git_revisions_in_the_worker(
    big_fleet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cold (a fresh clone: no parse cache), `plan` and `validate --base` read a large
    revision from git as publish does, parsed in the forked worker, and say the same as
    when everything is parsed here."""
    started: list[int] = []
    enter = catfile._Worker.__enter__

    def counted(worker: catfile._Worker) -> catfile._Worker:
        started.append(len(worker.oids))
        return enter(worker)

    monkeypatch.setattr(catfile._Worker, "__enter__", counted)

    def both(name: str) -> tuple[str, list[str]]:
        for each in ("plan", "validate"):  # each in a fresh copy: no .git/linefleet yet
            shutil.copytree(big_fleet, tmp_path / name / each)
        plan = plan_revisions(tmp_path / name / "plan", "HEAD", "HEAD", QUIET)
        report = validate(tmp_path / name / "validate", "HEAD", QUIET)
        return render.markdown(plan), [str(f) for f in report.findings]

    with_worker = both("worker")
    assert len(started) == 2 and min(started) >= catfile.WORKER_FROM  # plan's, validate's base
    monkeypatch.setattr(forked, "spare_core", lambda: False)
    assert both("here") == with_worker
    assert len(started) == 2
    assert "line-7.yaml" in with_worker[0] and with_worker[1]  # (the broken files are named)
