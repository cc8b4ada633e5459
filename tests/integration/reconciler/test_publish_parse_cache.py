"""The publish path's load (`load_revision`) reads and keeps the YAML parse cache by blob id
(`linefleet_forge.gitcache`), in a real git repository: it changes how much is parsed, never
which fleet loads, what is refused, or the bytes that are signed."""

from __future__ import annotations

from pathlib import Path

import pytest

from linefleet_core.errors import FindingsError
from linefleet_core.signing import SigningKey
from linefleet_core.yamlsafe import ParsedBlobs
from linefleet_forge import gitcache
from linefleet_forge.gitrepo import GitObjects
from reconciler.service.compile import compile_fleet
from reconciler.service.publish import load_revision, sign_all
from tests.support.minifleet import commit_all, committed_minifleet, edit_rollout, line_file

pytestmark = pytest.mark.integration
KEY = SigningKey.generate()
BASE = "file:///srv/fleet"


def payloads(repo: Path, rev: str = "HEAD", parsed: ParsedBlobs | None = None) -> dict[str, bytes]:
    revision = load_revision(repo, rev, parsed=parsed)
    docs = compile_fleet(revision.spec, revision.commit, revision.generation, BASE)
    return {d: s.payload for d, s in sign_all(docs, KEY).items()}


def cached(repo: Path) -> dict[str, object]:
    return gitcache.load_parsed(GitObjects.open(repo)).known


def test_a_second_load_parses_nothing_and_signs_the_same_bytes(tmp_path: Path) -> None:
    repo = committed_minifleet(tmp_path / "fleet")
    cold = payloads(repo, parsed=ParsedBlobs())  # nothing read back, nothing kept
    assert cached(repo) == {}
    assert payloads(repo) == cold  # reads none, parses every file, keeps them
    kept = cached(repo)
    assert len(kept) >= 10

    parsed = gitcache.load_parsed(GitObjects.open(repo))
    assert payloads(repo, parsed=parsed) == cold
    assert parsed.used.keys() == kept.keys()  # every file came from the cache


def test_a_changed_file_is_parsed_again_and_the_rest_reused(tmp_path: Path) -> None:
    repo = committed_minifleet(tmp_path / "fleet")
    payloads(repo)
    before = cached(repo)
    edit_rollout(repo, "toledo/line-1", serving="surface-classifier@3", candidate=None)
    commit_all(repo, "line-1 serves v3 (its candidate promoted)")
    warm = payloads(repo)
    assert warm == payloads(repo, parsed=ParsedBlobs())  # as a cold load signs them
    after = cached(repo)
    assert len(after.keys() - before.keys()) == 1  # the edited file, by its new blob id


def test_a_broken_file_is_refused_with_the_cache_warm_too(tmp_path: Path) -> None:
    repo = committed_minifleet(tmp_path / "fleet")
    payloads(repo)
    line = line_file(repo, "toledo/line-1")
    line.write_text(line.read_text().replace("taxonomy:", "taxonomy: [", 1))
    commit_all(repo, "broken line")
    for attempt in range(2):  # the problem is never cached: it is found every time
        with pytest.raises(FindingsError) as caught:
            load_revision(repo, "HEAD")
        assert "line-1.yaml" in str(caught.value), attempt
