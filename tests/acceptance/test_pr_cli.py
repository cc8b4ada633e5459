"""`linefleet pr ...` as a user runs it, against a real bare origin and a clone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import git
import pytest

from linefleet.cli import main
from linefleet_forge.local import LocalForge
from tests.integration.forge.fakeforge import OWNER, REPO, TOKEN, serve
from tests.integration.forge.gitrepos import origin_and_clone, push_branch
from tests.support.server import free_port

pytestmark = pytest.mark.acceptance


@pytest.fixture
def repos(tmp_path: Path) -> tuple[Path, Any]:
    origin, clone = origin_and_clone(tmp_path)
    push_branch(clone, "rollback/toledo-line-3", {"fleet/a.yaml": "a: 1\n"})
    push_branch(clone, "promote/surface-classifier-5", {"fleet/b.yaml": "b: 1\n"})
    forge = LocalForge.for_repo(clone.working_tree_dir)
    forge.open_pull_request(
        "rollback/toledo-line-3", "main", "Roll back toledo/line-3", "Canary failed.", ["rollback"]
    )
    forge.open_pull_request(
        "promote/surface-classifier-5", "main", "Promote surface-classifier@5", "Evidence"
    )
    return origin, clone


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_show_merge_close(repos: tuple[Path, Any], capsys: pytest.CaptureFixture[str]) -> None:
    origin, clone = repos
    repo = clone.working_tree_dir

    code, out, _ = run(capsys, "pr", "list", "--repo", repo)
    assert code == 0
    assert (
        out.splitlines()[0]
        == "#1    open    rollback/toledo-line-3 -> main  Roll back toledo/line-3  [rollback]"
    )
    assert out.splitlines()[1].startswith("#2    open    promote/surface-classifier-5 -> main")
    assert (
        out.splitlines()[2] == f"2 open pull request(s) in {origin / 'linefleet-forge' / 'pulls'}"
    )

    code, out, _ = run(capsys, "pr", "show", "1", "--repo", repo)
    assert code == 0
    assert out.startswith(
        "#1 Roll back toledo/line-3\nstate:   open\nbranch:  rollback/toledo-line-3 -> main\n"
    )
    assert "\nCanary failed.\n" in out

    code, out, _ = run(capsys, "pr", "merge", "1", "--repo", repo)
    assert (code, out) == (
        0,
        "merged #1: rollback/toledo-line-3 into main (run `git pull` to fetch it)\n",
    )
    tip = git.Repo(origin).commit("main")
    assert len(tip.parents) == 2
    assert (tip.tree / "fleet/a.yaml").data_stream.read() == b"a: 1\n"

    code, out, _ = run(capsys, "pr", "close", "2", "--repo", repo)
    assert (code, out) == (0, "closed #2: Promote surface-classifier@5\n")

    code, out, _ = run(capsys, "pr", "list", "--repo", repo, "--state", "all", "--format", "json")
    doc = json.loads(out)
    assert doc["format_version"] == 1
    assert [(p["number"], p["state"]) for p in doc["pulls"]] == [(1, "merged"), (2, "closed")]
    assert doc["pulls"][0]["merge_commit"] == tip.hexsha


def test_refusals_exit_1_with_the_reason(
    repos: tuple[Path, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    _, clone = repos
    repo = clone.working_tree_dir
    assert run(capsys, "pr", "merge", "1", "--repo", repo)[0] == 0

    code, out, err = run(capsys, "pr", "merge", "1", "--repo", repo)
    assert (code, out) == (1, "")
    assert err == "linefleet: error: local forge: pull request #1 is merged\n"

    code, _, err = run(capsys, "pr", "show", "99", "--repo", repo)
    assert code == 1
    assert err == "linefleet: error: local forge: no pull request #99\n"


def test_conflicting_merge_exits_1_and_leaves_main_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    origin, clone = origin_and_clone(tmp_path)
    push_branch(clone, "one", {"fleet/policy.yaml": "one\n"})
    push_branch(clone, "two", {"fleet/policy.yaml": "two\n"})
    forge = LocalForge.for_repo(clone.working_tree_dir)
    forge.open_pull_request("one", "main", "One", "")
    forge.open_pull_request("two", "main", "Two", "")
    assert run(capsys, "pr", "merge", "1", "--repo", clone.working_tree_dir)[0] == 0
    main_tip = git.Repo(origin).commit("main").hexsha

    code, _, err = run(capsys, "pr", "merge", "2", "--repo", clone.working_tree_dir)

    assert code == 1
    assert "pull request #2 (two into main) does not merge cleanly; rebase two on main" in err
    assert git.Repo(origin).commit("main").hexsha == main_tip


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "pr", "list", "--repo", str(tmp_path / "missing"))
    assert (code, err) == (
        2,
        f"linefleet: error: --repo {tmp_path / 'missing'}: no such directory\n",
    )
    code, _, err = run(capsys, "pr", "list", "--repo", str(tmp_path))
    assert code == 2
    assert "not a git repository" in err


def test_local_comment_is_posted_once_and_updated(
    repos: tuple[Path, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, clone = repos
    plan = tmp_path / "plan.md"
    args = ["pr", "comment", "--forge", "local", "--number", "1", "--marker", "plan"]
    args += ["--body-file", str(plan), "--repo", clone.working_tree_dir]
    plan.write_text("Plan: 1 to change\n")
    assert run(capsys, *args) == (0, "comment 'plan' on #1: created\n", "")
    assert run(capsys, *args) == (
        0,
        "comment 'plan' on #1: unchanged (same text already posted)\n",
        "",
    )
    plan.write_text("Plan: 2 to change\n")
    assert run(capsys, *args) == (0, "comment 'plan' on #1: updated\n", "")

    _, out, _ = run(capsys, "pr", "show", "1", "--repo", clone.working_tree_dir, "--format", "json")
    comments = json.loads(out)["comments"]
    assert comments == [{"id": 1, "body": "<!-- linefleet:plan -->\nPlan: 2 to change\n"}]


def test_github_comment_through_the_rest_api(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = tmp_path / "plan.md"
    plan.write_text("# Plan\nPlan: 0 to add, 1 to change, 0 to remove\n")
    args = ["pr", "comment", "--forge", f"github://{OWNER}/{REPO}", "--number", "1"]
    args += ["--marker", "plan", "--body-file", str(plan)]
    with serve("github") as fake:
        fake.pulls[1] = {
            "number": 1,
            "head": "b",
            "base": "main",
            "title": "t",
            "body": "",
            "state": "open",
            "labels": [],
        }
        monkeypatch.setenv("LINEFLEET_GITHUB_API", fake.base_url)
        monkeypatch.delenv("GITHUB_TOKEN", raising=False)
        code, _, err = run(capsys, *args)
        assert (code, err) == (
            2,
            f"linefleet: error: --forge github://{OWNER}/{REPO}: set GITHUB_TOKEN to an API token that may open pull requests\n",
        )

        monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
        assert run(capsys, *args)[:2] == (0, "comment 'plan' on #1: created\n")
        assert run(capsys, *args)[:2] == (
            0,
            "comment 'plan' on #1: unchanged (same text already posted)\n",
        )
        plan.write_text("# Plan\nPlan: 0 to add, 2 to change, 0 to remove\n")
        assert run(capsys, *args)[:2] == (0, "comment 'plan' on #1: updated\n")
        assert [c["body"] for c in fake.comments[1]] == [
            f"<!-- linefleet:plan -->\n{plan.read_text()}"
        ]

        code, _, err = run(capsys, *[a if a != "1" else "7" for a in args])
        assert code == 1
        assert "HTTP 404" in err

    monkeypatch.setenv("LINEFLEET_GITHUB_API", f"http://127.0.0.1:{free_port()}")
    code, _, err = run(capsys, *args)
    assert code == 4
    assert "cannot connect" in err


def test_bad_marker_and_missing_body_file_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["pr", "comment", "--forge", "local", "--number", "1", "--repo", str(tmp_path)]
    code, _, err = run(capsys, *base, "--marker", "a-->b", "--body-file", "x")
    assert code == 2
    assert "--marker: invalid comment marker" in err
    code, _, err = run(capsys, *base, "--marker", "plan", "--body-file", str(tmp_path / "nope.md"))
    assert code == 2
    assert "--body-file" in err


def test_open_from_the_command_line_is_idempotent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    origin, clone = origin_and_clone(tmp_path)
    push_branch(clone, "line-3-lighting", {"fleet/a.yaml": "a: 1\n"})
    body = tmp_path / "body.md"
    body.write_text("New lighting profile for line 3.\n")
    args = ["pr", "open", "--head", "line-3-lighting", "--title", "Line 3 lighting"]
    args += ["--body-file", str(body), "--label", "site:toledo", "--repo", clone.working_tree_dir]

    code, out, _ = run(capsys, *args)
    assert (code, out) == (
        0,
        f"#1 open: line-3-lighting -> main  {origin}/linefleet-forge/pulls/1.json\n",
    )
    assert run(capsys, *args)[1] == out

    code, _, err = run(
        capsys, "pr", "open", "--head", "nope", "--title", "t", "--repo", clone.working_tree_dir
    )
    assert code == 1
    assert "branch 'nope' does not exist" in err
    pull = LocalForge.for_repo(clone.working_tree_dir).record(1)
    assert (pull.pr.body, pull.pr.labels) == (
        "New lighting profile for line 3.\n",
        ("site:toledo",),
    )
