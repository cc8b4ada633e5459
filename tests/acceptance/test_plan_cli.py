"""`linefleet plan` as CI and engineers run it: exit codes, formats, messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from linefleet.cli import main
from tests.support import minifleet
from tests.support.minifleet import commit_all, edit_rollout, write_minifleet

pytestmark = pytest.mark.acceptance
QUIET = minifleet.QUIET.isoformat()
IN_FREEZE = minifleet.IN_FREEZE.isoformat()
TO_CANARY = minifleet.TO_CANARY


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return minifleet.committed_minifleet(tmp_path)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["plan", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_an_allowed_promotion_exits_0_with_a_markdown_plan(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_rollout(repo, "toledo/line-1", candidate=TO_CANARY)
    commit_all(repo, "promote")

    code, out, err = run(capsys, "--repo", str(repo), "--base", "HEAD~1", "--now", QUIET)

    assert (code, err) == (0, "")
    assert out.startswith("<!-- linefleet-plan -->\n## ✅ linefleet plan: valid")
    assert "#### ✅ `toledo/line-1` will be updated" in out
    assert "| `~` | candidate stage | `shadow` | `canary` |" in out
    assert (
        "**Plan: 0 lines to add, 1 to change, 0 to remove; 1 device affected; "
        "policy: 0 violations**"
    ) in out


def test_a_policy_violation_exits_1_and_says_why(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_rollout(
        repo,
        "toledo/line-1",
        serving="surface-classifier@3",
        candidate=None,
        previous="surface-classifier@2",
    )
    commit_all(repo, "skip canary")

    code, out, _ = run(
        capsys, "--repo", str(repo), "--base", "HEAD~1", "--format", "text", "--now", QUIET
    )

    assert code == 1
    assert "  # toledo/line-1 will be updated  [violation]" in out
    assert (
        "    ! toledo/line-1: surface-classifier@3 goes from shadow straight to production; "
        "promote to canary first"
    ) in out
    assert out.endswith("policy: 1 violation\n")


def test_a_freeze_blocks_a_promotion_but_not_a_rollback(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = commit_all(repo, "base")  # nothing new: same tree, a second commit
    edit_rollout(repo, "toledo/line-1", candidate=TO_CANARY)
    promote = commit_all(repo, "promote")
    edit_rollout(repo, "toledo/line-2", candidate=None)
    commit_all(repo, "abort toledo/line-2")
    args = ("--repo", str(repo), "--format", "json", "--now", IN_FREEZE)

    code, out, _ = run(capsys, *args, "--base", base, "--head", promote)
    assert code == 1
    assert "no changes during the freeze 'year-end inventory'" in out

    code, out, _ = run(capsys, *args, "--base", promote)
    assert code == 0
    assert json.loads(out)["lines"][0]["verdict"] == "rollback"


def test_json_plan(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base_sha = commit_all(repo, "base")
    edit_rollout(
        repo, "dresden/line-2", candidate={"model": "surface-classifier@3", "stage": "shadow"}
    )
    head_sha = commit_all(repo, "shadow on dresden/line-2")

    code, out, _ = run(
        capsys, "--repo", str(repo), "--base", base_sha, "--format", "json", "--now", QUIET
    )

    doc = json.loads(out)
    assert code == 0
    assert doc["format_version"] == 1
    assert doc["base"] == {"ref": base_sha, "sha": base_sha}
    assert doc["head"] == {"ref": "HEAD", "sha": head_sha}
    assert doc["summary"]["lines_changed"] == 1
    [line] = doc["lines"]
    assert line["steps"] == [
        {"move": "new-candidate", "text": "new candidate surface-classifier@3 in shadow"}
    ]


def test_out_writes_the_plan_to_a_file(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "plan.md"
    code, out, _ = run(capsys, "--repo", str(repo), "--base", "HEAD", "--out", str(target))
    assert (code, out) == (0, "")
    assert "No changes: the fleet is the same in both revisions." in target.read_text("utf-8")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--base", "no-such-ref"), "unknown git revision 'no-such-ref'"),
        (("--base", "HEAD", "--head", "nope"), "unknown git revision 'nope'"),
        (("--base", "HEAD", "--now", "yesterday"), "--now: 'yesterday' is not an ISO 8601 time"),
    ],
)
def test_usage_errors_exit_2(
    repo: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    code, out, err = run(capsys, "--repo", str(repo), *args)
    assert (code, out) == (2, "")
    assert err.startswith(f"linefleet: error: {message}")
    assert len(err.splitlines()) == 1  # one message, no traceback


def test_worktree_plans_uncommitted_edits(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_rollout(repo, "toledo/line-2", candidate=None)  # not committed
    args = ("--repo", str(repo), "--base", "HEAD", "--format", "text", "--now", QUIET)

    code, out, _ = run(capsys, *args)
    assert (code, out.splitlines()[-1]) == (
        0,
        "Plan: 0 lines to add, 0 to change, 0 to remove; 0 devices affected; policy: 0 violations",
    )

    code, out, _ = run(capsys, *args, "--worktree")
    assert code == 0
    assert "-> working tree" in out.splitlines()[0]
    assert "  # toledo/line-2 will be updated  [rollback]" in out


def test_head_and_worktree_exclude_each_other(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["plan", "--repo", str(repo), "--base", "HEAD", "--head", "HEAD", "--worktree"])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_not_a_git_repository_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_minifleet(tmp_path)
    code, _, err = run(capsys, "--repo", str(tmp_path), "--base", "main")
    assert code == 2
    assert err == f"linefleet: error: {tmp_path}: not a git repository\n"


def test_missing_base_is_an_argparse_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["plan"])
    assert exc.value.code == 2
    assert "--base" in capsys.readouterr().err


def test_the_installed_command(repo: Path) -> None:
    """One real process, as CI runs it: the plan on stdout, the exit code of the verdict."""
    edit_rollout(repo, "toledo/line-2", candidate=TO_CANARY)
    commit_all(repo, "weak evidence")
    proc = subprocess.run(
        [sys.executable, "-m", "linefleet", "plan", "--base", "HEAD~1", "--now", QUIET],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "## ❌ linefleet plan: 1 violation of the rollout policy" in proc.stdout
    assert "below surface-classifier@2's 0.940 minus the tolerance 0.010" in proc.stdout
