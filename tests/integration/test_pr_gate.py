"""The pull-request check cannot be changed by the pull request it checks.

linefleet's own `.github/workflows/pr.yml` runs on `pull_request_target`: it checks out the
base branch in `base/` and the pull request (its merge commit, full history) in `change/`, and
runs `./base/.github/actions/check` with `package: base`, i.e. `base/.github/actions/check/
check.sh`, which installs linefleet from `base/` and checks `change/` against `origin/main`.
This test runs exactly that procedure on a real git repository (a bare origin, a base commit
on main and a pull request branch) where the pull request weakens the validator
(`reconciler/review/policy.py` accepts everything), disarms the check script, and promotes a line
straight from shadow to production, which the rollout policy forbids.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import freshvenv

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
LINE = "fleet/sites/pune/lines/machining-1.yaml"
SHADOW = """\
  serving: surface-classifier@2
  previous: surface-classifier@1
  candidate:
    model: surface-classifier@3
    stage: shadow
"""
STRAIGHT_TO_PRODUCTION = """\
  serving: surface-classifier@3
  previous: surface-classifier@2
"""
WEAKENED = "\n\ndef check_change(*args: object, **kwargs: object) -> list[object]:\n    return []\n"
AUTHOR = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
}


def git(cwd: Path, *argv: str) -> str:
    env = {**os.environ, **AUTHOR}
    return subprocess.run(
        ["git", *argv], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runner's workspace after pr.yml's two checkouts: `base/` and `change/`."""
    top = tmp_path_factory.mktemp("gate")
    seed = freshvenv.copy_source(ROOT, top / "seed")
    git(seed, "init", "-q", "--initial-branch=main")
    git(seed, "add", "-A")
    git(seed, "commit", "-q", "-m", "base")
    git(top, "clone", "-q", "--bare", str(seed), "origin.git")

    work = top / "work"
    git(top, "clone", "-q", str(top / "origin.git"), "work")
    git(work, "checkout", "-q", "-b", "weaken-the-gate")
    policy = work / "reconciler" / "review" / "policy.py"
    policy.write_text(policy.read_text() + WEAKENED)
    check_sh = work / ".github" / "actions" / "check" / "check.sh"
    check_sh.write_text(check_sh.read_text().replace("set -uo pipefail", "exit 0", 1))
    line = work / LINE
    assert SHADOW in line.read_text(), "the example fleet changed: pick another shadow line"
    line.write_text(line.read_text().replace(SHADOW, STRAIGHT_TO_PRODUCTION))
    git(work, "commit", "-q", "-am", "Promote pune/machining-1, and relax the policy")
    git(work, "push", "-q", "origin", "weaken-the-gate")

    ws = top / "workspace"
    ws.mkdir()
    git(ws, "clone", "-q", str(top / "origin.git"), "base")  # actions/checkout, path: base
    git(ws, "clone", "-q", str(top / "origin.git"), "change")  # path: change, fetch-depth: 0
    git(ws / "change", "checkout", "-q", "weaken-the-gate")
    return ws


def run_check(ws: Path, package: str, venv: freshvenv.Venv) -> subprocess.CompletedProcess[str]:
    """What `uses: ./base/.github/actions/check` with `package: base, repo: change` runs."""
    env = venv.env(
        FLEET_REPO="change",
        BASE_REV="origin/main",
        LINEFLEET_PACKAGE=package,
        LINEFLEET_PYTHON=str(venv.python),
        LINEFLEET_PIP_ARGS="--no-index --no-build-isolation",  # offline: deps are linked in
        OUT=str(ws / "out"),
    )
    script = ws / "base" / ".github" / "actions" / "check" / "check.sh"
    return subprocess.run(
        ["bash", str(script)], cwd=ws, env=env, capture_output=True, text=True, timeout=300
    )


def test_a_pull_request_that_weakens_the_validator_is_still_refused(
    workspace: Path, tmp_path: Path
) -> None:
    change = workspace / "change"
    # The pull request's own validator would let it through: the weakening is real.
    own = subprocess.run(
        [sys.executable, "-m", "linefleet", "validate", "--repo", ".", "--base", "origin/main"],
        cwd=change,
        env={**os.environ, "PYTHONPATH": str(change)},
        capture_output=True,
        text=True,
    )
    assert own.returncode == 0, own.stdout + own.stderr
    assert own.stdout.startswith("valid: 0 error(s)")

    venv = freshvenv.create(tmp_path / "venv", freshvenv.dependency_links(tmp_path / "links"))
    done = run_check(workspace, "base", venv)
    assert done.returncode == 1, done.stdout + done.stderr
    findings = (workspace / "out" / "validate.txt").read_text()
    assert f"{LINE}:" in findings
    assert "surface-classifier@3 goes from shadow straight to production" in findings
    assert findings.splitlines()[-1].startswith("invalid: ")
    comment = (workspace / "out" / "comment.md").read_text()
    assert comment.startswith("#### linefleet validate: :x: invalid")
    assert "checked by linefleet" in comment
    # The validator that ran was installed from the base checkout, not imported from the change.
    assert f"linefleet from {workspace / 'base'}[control]" in done.stdout
    assert str(change) not in done.stdout.split("linefleet from", 1)[1].splitlines()[0]


def test_the_check_refuses_to_install_linefleet_from_the_change(
    workspace: Path, tmp_path: Path
) -> None:
    venv = freshvenv.create(tmp_path / "venv", freshvenv.dependency_links(tmp_path / "links"))
    for package in ("change", "change/.", str(workspace / "change" / "reconciler" / "..")):
        done = run_check(workspace, package, venv)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "refusing to install linefleet from" in done.stderr
        assert "it lies inside the repository being checked" in done.stderr
    assert not (venv.root / "bin" / "linefleet").exists()
