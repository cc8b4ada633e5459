"""`linefleet validate --base REF`: the rollout policy on the working tree's change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from linefleet.cli import main
from tests.support import minifleet
from tests.support.minifleet import edit_rollout, write_minifleet

pytestmark = pytest.mark.acceptance
QUIET = minifleet.QUIET.isoformat()
IN_FREEZE = minifleet.IN_FREEZE.isoformat()
TO_CANARY = minifleet.TO_CANARY


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return minifleet.committed_minifleet(tmp_path)


def run(capsys: pytest.CaptureFixture[str], repo: Path, *args: str) -> tuple[int, str, str]:
    code = main(["validate", "--repo", str(repo), "--base", "HEAD", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_an_allowed_change_exits_0(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_rollout(repo, "toledo/line-1", candidate=TO_CANARY)
    code, out, _ = run(capsys, repo, "--now", QUIET)
    assert code == 0
    assert out == "valid: 0 error(s), 0 warning(s) in 13 document(s)\n"


def test_skipping_canary_exits_1_with_a_located_message(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_rollout(
        repo,
        "toledo/line-1",
        serving="surface-classifier@3",
        candidate=None,
        previous="surface-classifier@2",
    )
    code, out, _ = run(capsys, repo, "--now", QUIET)
    assert code == 1
    assert out.splitlines() == [
        "fleet/sites/toledo/lines/line-1.yaml:34:12: rollout.serving: toledo/line-1: "
        "surface-classifier@3 goes from shadow straight to production; promote to canary first",
        "invalid: 1 error(s), 0 warning(s) in 13 document(s)",
    ]


def test_weak_evidence_names_the_numbers(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_rollout(repo, "toledo/line-2", candidate=TO_CANARY)
    code, out, _ = run(capsys, repo, "--now", QUIET, "--format", "json")
    assert code == 1
    doc = json.loads(out)
    [finding] = doc["findings"]
    assert finding["code"] == "policy"
    assert finding["field"] == "rollout.candidate.stage"
    assert finding["message"] == (
        "toledo/line-2: surface-classifier@3 scores accuracy 0.900, below surface-classifier@2's 0.940 minus "
        "the tolerance 0.010 (needs at least 0.930)"
    )


def test_freeze_refuses_changes_but_allows_rollbacks(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_rollout(repo, "toledo/line-1", candidate=TO_CANARY)
    code, out, _ = run(capsys, repo, "--now", IN_FREEZE)
    assert code == 1
    assert "toledo/line-1: no changes during the freeze 'year-end inventory'" in out

    edit_rollout(repo, "toledo/line-1", candidate=None)  # abort instead: always allowed
    code, out, _ = run(capsys, repo, "--now", IN_FREEZE)
    assert code == 0, out


def test_an_unchanged_tree_passes_even_in_a_freeze(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = run(capsys, repo, "--now", IN_FREEZE)
    assert code == 0


def test_unknown_base_exits_2(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", "--repo", str(repo), "--base", "origin/nope"])
    _, err = capsys.readouterr()
    assert code == 2
    assert err == f"linefleet: error: unknown git revision 'origin/nope' in {repo}\n"


def test_base_outside_git_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_minifleet(tmp_path)
    code = main(["validate", "--repo", str(tmp_path), "--base", "main"])
    _, err = capsys.readouterr()
    assert code == 2
    assert err == f"linefleet: error: {tmp_path}: not a git repository\n"
