"""The publish workflow, run locally against a real Mosquitto and a real git origin."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import git
import pytest
import yaml

from linefleet.cli import main
from tests.integration.forge.fakeforge import OWNER, REPO, TOKEN, serve
from tests.integration.forge.workflow_runner import JobRun, run_job
from tests.integration.mqtt.conftest import retained
from tests.support.minifleet import commit_all, edit_rollout, init_repo, write_minifleet
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.integration

WORKFLOW = yaml.safe_load(
    (Path(__file__).resolve().parents[3] / ".github" / "workflows" / "publish.yml").read_text()
)


def run_publish(work: Any, broker: Mosquitto, key_pem: str) -> JobRun:
    """The job as Actions runs it; the GitHub API (who merged) is a fake one on loopback."""
    with serve("github") as forge:
        forge.pulls[1] = {
            "number": 1, "head": "promote", "base": "main", "title": "Promote", "body": "",
            "state": "closed", "labels": [], "merged_by": "quality-lead",
            "merge_commit_sha": str(work.remote().refs.main.commit.hexsha),
        }  # fmt: skip
        ctx = {
            "secrets": {"LINEFLEET_BROKER": broker.url, "LINEFLEET_SIGNING_KEY": key_pem},
            "github": {"repository": f"{OWNER}/{REPO}", "token": TOKEN},
        }
        env = {
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "LINEFLEET_GITHUB_API": forge.base_url,
        }
        return run_job(WORKFLOW, ctx, Path(work.working_tree_dir), env, frozenset({"install"}))


def published(work: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((Path(work.working_tree_dir) / "publish.json").read_text())
    return doc


def test_publishes_the_current_main_once_and_removes_the_key(tmp_path: Path) -> None:
    seed = tmp_path / "seed"
    init_repo(seed)
    write_minifleet(seed)
    commit_all(seed, "initial fleet")
    git.Repo.clone_from(seed, tmp_path / "origin.git", bare=True)
    work = git.Repo.clone_from(tmp_path / "origin.git", tmp_path / "work")
    assert main(["keys", "generate", "--out", str(tmp_path / "keys")]) == 0
    key_pem = (tmp_path / "keys" / "signing.key").read_text()

    with Mosquitto(tmp_path / "broker") as broker:
        first = run_publish(work, broker, key_pem)
        assert not first.failed, first.logs
        assert published(work)["published"] > 0
        # the approver is the forge's merged_by of the published commit (the PR's merge)
        desired = retained(broker, "linefleet/v1/+/+/desired")
        assert desired
        for payload in desired.values():
            assert json.loads(payload)["approval"]["by"] == "@quality-lead"
        assert not any((tmp_path / "runner-temp").iterdir())  # the key file is gone

        second = run_publish(work, broker, key_pem)
        assert not second.failed, second.logs
        assert published(work)["published"] == 0

        # main moves on while this (older) checkout's run is queued: it publishes the new tip.
        other = git.Repo.clone_from(tmp_path / "origin.git", tmp_path / "other")
        with other.config_writer() as cfg:
            cfg.set_value("user", "name", "Engineer")
            cfg.set_value("user", "email", "engineer@example.com")
        edit_rollout(Path(str(other.working_tree_dir)), "toledo/line-2", candidate=None)
        other.git.commit("-am", "abort the toledo/line-2 candidate")
        other.git.push("origin", "HEAD:main")
        third = run_publish(work, broker, key_pem)
        assert not third.failed, third.logs
        assert published(work)["published"] > 0


def test_unreachable_broker_fails_the_job(tmp_path: Path) -> None:
    seed = tmp_path / "seed"
    init_repo(seed)
    write_minifleet(seed)
    commit_all(seed, "initial fleet")
    work = git.Repo.clone_from(seed, tmp_path / "work")
    work.git.remote("set-url", "origin", str(seed))
    assert main(["keys", "generate", "--out", str(tmp_path / "keys")]) == 0
    broker = Mosquitto(tmp_path / "broker")  # never started

    run = run_publish(work, broker, (tmp_path / "keys" / "signing.key").read_text())

    assert run.failed
    assert run.outcomes["Publish"] == "failure"
    assert run.outcomes["Remove the signing key"] == "success"
    assert not any((tmp_path / "runner-temp").iterdir())
