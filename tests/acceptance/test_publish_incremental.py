"""`linefleet publish` from the last published commit: only the devices a change touches.

Through the CLI, on a real git repository and a real Mosquitto; what the broker retains is
read back with a plain subscriber.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from linefleet.cli import main
from linefleet_core.mqttsession import retained_snapshot
from linefleet_core.mqtturl import BrokerAddress
from reconciler.service.marker import MARKER_TOPIC
from tests.support import minifleet
from tests.support.mosquitto import Mosquitto, mosquitto

__all__ = ["mosquitto"]
pytestmark = pytest.mark.acceptance

OUTSIDE_WINDOWS = minifleet.QUIET.replace(year=2027).isoformat()
DEVICES = ["dresden/dresden-edge-1", "toledo/toledo-edge-1", "toledo/toledo-edge-2"]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "fleet"
    minifleet.write_minifleet(root)
    minifleet.init_repo(root)
    minifleet.commit_all(root, "initial fleet")
    return root


@pytest.fixture
def key_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert main(["keys", "generate", "--out", str(tmp_path / "keys"), "--format", "json"]) == 0
    return Path(json.loads(capsys.readouterr().out)["private_key"])


def publish(
    capsys: pytest.CaptureFixture[str], repo: Path, broker: str, key: Path, *extra: str
) -> dict[str, Any]:
    argv = ["publish", "--broker", broker, "--repo", str(repo), "--signing-key", str(key)]
    code = main([*argv, "--now", OUTSIDE_WINDOWS, "--format", "json", *extra])
    out = capsys.readouterr().out
    assert code == 0, out
    result: dict[str, Any] = json.loads(out)
    return result


def retained(broker: Mosquitto) -> dict[str, dict[str, Any]]:
    """`site/device` -> its retained desired document; the marker under its topic."""
    snap = retained_snapshot(
        BrokerAddress.parse(broker.url), ["linefleet/v1/+/+/desired", MARKER_TOPIC], "test-read"
    )
    out = {}
    for name, msg in snap.items():
        if msg.payload:
            key = name if name == MARKER_TOPIC else "/".join(name.split("/")[2:4])
            out[key] = json.loads(msg.payload)
    return out


def test_one_line_changed_only_its_devices_get_a_new_document(
    repo: Path, key_file: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    first = publish(capsys, repo, mosquitto.url, key_file)
    assert first["mode"] == "full" and "no publish marker" in first["full_reason"]
    assert sorted(first["published_devices"]) == DEVICES
    before = retained(mosquitto)
    assert before[MARKER_TOPIC]["commit"] == first["commit"]

    # dresden/line-2 is served by dresden-edge-1 only
    minifleet.edit_rollout(repo, "dresden/line-2", telemetry={"daily_upload_budget_mb": 7.0})
    minifleet.commit_all(repo, "smaller upload budget on dresden/line-2")
    second = publish(capsys, repo, mosquitto.url, key_file)
    assert second["mode"] == "incremental" and second["full_reason"] is None
    assert second["published_devices"] == ["dresden/dresden-edge-1"]
    assert (second["unchanged"], second["devices"]) == (2, 3)
    after = retained(mosquitto)
    assert after["dresden/dresden-edge-1"]["commit"] == second["commit"]
    budgets = [
        ln["telemetry"]["daily_upload_budget_mb"]
        for ln in after["dresden/dresden-edge-1"]["spec"]["lines"]
    ]
    assert 7.0 in budgets
    for other in ("toledo/toledo-edge-1", "toledo/toledo-edge-2"):
        assert after[other] == before[other]  # not re-sent: the same bytes, the old commit
    assert after[MARKER_TOPIC]["commit"] == second["commit"]

    # The full pass agrees: nothing else needs sending.
    check = publish(capsys, repo, mosquitto.url, key_file, "--full")
    assert (check["mode"], check["full_reason"], check["published"]) == ("full", "--full", 0)


def test_nothing_changed_publishes_nothing(
    repo: Path, key_file: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    publish(capsys, repo, mosquitto.url, key_file)
    before = retained(mosquitto)
    again = publish(capsys, repo, mosquitto.url, key_file)
    assert (again["mode"], again["published"], again["pruned"]) == ("incremental", 0, 0)
    assert retained(mosquitto) == before  # marker included: not rewritten

    minifleet.edit_site(repo, "toledo", lambda doc: doc.update(name="Toledo (renamed)"))
    minifleet.commit_all(repo, "a site's name: no document carries it")
    renamed = publish(capsys, repo, mosquitto.url, key_file)
    assert (renamed["mode"], renamed["published"]) == ("incremental", 0)
    now = retained(mosquitto)
    assert now[MARKER_TOPIC]["commit"] == renamed["commit"]  # the marker moves on
    assert {k: v for k, v in now.items() if k != MARKER_TOPIC} == {
        k: v for k, v in before.items() if k != MARKER_TOPIC
    }


def test_a_wiped_broker_gets_the_full_pass(
    repo: Path,
    key_file: Path,
    tmp_path: Path,
    mosquitto: Mosquitto,
    capsys: pytest.CaptureFixture[str],
) -> None:
    publish(capsys, repo, mosquitto.url, key_file)
    mosquitto.stop()
    shutil.rmtree(mosquitto.workdir / "data", ignore_errors=True)
    for db in mosquitto.workdir.rglob("*.db"):
        db.unlink()
    mosquitto.start()
    assert retained(mosquitto) == {}
    again = publish(capsys, repo, mosquitto.url, key_file)
    assert again["mode"] == "full" and "no publish marker" in again["full_reason"]
    assert sorted(again["published_devices"]) == DEVICES


def test_a_removed_device_is_pruned_incrementally(
    repo: Path, key_file: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    publish(capsys, repo, mosquitto.url, key_file)
    minifleet.device_file(repo, "toledo", "toledo-edge-2").unlink()
    minifleet.commit_all(repo, "retire toledo-edge-2")  # its cameras become unserved: a warning
    gone = publish(capsys, repo, mosquitto.url, key_file)
    assert gone["mode"] == "incremental"
    assert gone["pruned_topics"] == ["linefleet/v1/toledo/toledo-edge-2/desired"]
    assert retained(mosquitto)["toledo/toledo-edge-2"]["kind"] == "Removed"


def test_mismatches_fall_back_to_the_full_pass(
    repo: Path,
    key_file: Path,
    tmp_path: Path,
    mosquitto: Mosquitto,
    capsys: pytest.CaptureFixture[str],
) -> None:
    publish(capsys, repo, mosquitto.url, key_file)
    # another signing key: the marker is not ours
    assert main(["keys", "generate", "--out", str(tmp_path / "other"), "--format", "json"]) == 0
    other = Path(json.loads(capsys.readouterr().out)["private_key"])
    rotated = publish(capsys, repo, mosquitto.url, other)
    assert rotated["mode"] == "full" and "not ours" in rotated["full_reason"]
    assert sorted(rotated["published_devices"]) == DEVICES  # re-signed with the new key

    # another artifact base: every URL may change
    based = publish(capsys, repo, mosquitto.url, other, "--artifact-base", "https://m.invalid/f")
    assert based["mode"] == "full" and "artifact base" in based["full_reason"]

    # this repository lost the index of the published commit (a fresh clone, say)
    shutil.rmtree(repo / ".git" / "linefleet")
    minifleet.edit_rollout(repo, "dresden/line-2", telemetry={"daily_upload_budget_mb": 7.0})
    minifleet.commit_all(repo, "smaller upload budget")
    fresh = publish(capsys, repo, mosquitto.url, other, "--artifact-base", "https://m.invalid/f")
    assert fresh["mode"] == "full" and "no dependency index" in fresh["full_reason"]
    assert fresh["published_devices"] == ["dresden/dresden-edge-1"]

    # a policy change touches every device: the full pass
    minifleet.edit_yaml(repo / "fleet/policy.yaml", lambda doc: doc.update(heartbeat_seconds=45))
    minifleet.commit_all(repo, "slower heartbeat")
    policy = publish(capsys, repo, mosquitto.url, other, "--artifact-base", "https://m.invalid/f")
    assert policy["mode"] == "full" and "policy" in policy["full_reason"]
    assert sorted(policy["published_devices"]) == DEVICES


def test_a_held_change_leaves_no_marker_so_the_next_publish_is_full(
    repo: Path, key_file: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    in_freeze = minifleet.IN_FREEZE.isoformat()
    publish(capsys, repo, mosquitto.url, key_file, "--now", in_freeze)
    canary = {"model": "surface-classifier@3", "stage": "canary", "canary_fraction": 0.1}
    minifleet.edit_rollout(repo, "toledo/line-1", candidate=canary)
    minifleet.commit_all(repo, "promote toledo/line-1 to canary")
    held = publish(capsys, repo, mosquitto.url, key_file, "--now", in_freeze)
    assert held["mode"] == "incremental" and held["held"] and held["published"] == 0
    assert MARKER_TOPIC not in retained(mosquitto)
    done = publish(capsys, repo, mosquitto.url, key_file)  # the freeze is over
    assert done["mode"] == "full" and done["published_devices"] == ["toledo/toledo-edge-1"]
