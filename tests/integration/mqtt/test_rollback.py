"""A canary past its health gates becomes a rollback pull request (local forge, real git)."""

from __future__ import annotations

from pathlib import Path

import git
import pytest

from linefleet_core.mqttsession import Session
from linefleet_core.mqtturl import BrokerAddress
from linefleet_core.signing import SigningKey
from linefleet_forge.local import LocalForge
from reconciler.service.fleetstatus import fleet_status
from reconciler.service.reconcile import Reconciler, Settings
from tests.integration.mqtt.conftest import ack, retained, send
from tests.support.mosquitto import Mosquitto
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
DRESDEN = "linefleet/v1/dresden/dresden-edge-1"


def test_a_failing_canary_is_rolled_back_in_git_once(
    fleet_repo: Path, tmp_path: Path, mosquitto: Mosquitto, key: SigningKey
) -> None:
    bare = tmp_path / "remote.git"
    git.Repo.init(bare, bare=True, initial_branch="main")
    git.Repo(fleet_repo).create_remote("origin", str(bare)).push("main:main").raise_if_error()
    clone = tmp_path / "clone"
    git.Repo.clone_from(str(bare), clone)
    address = BrokerAddress.parse(mosquitto.url)
    settings = Settings(
        clone, address, key, tmp_path / "state", "file:///x", interval=0.1, forge="local"
    )
    rec = Reconciler.open(settings)
    first = rec.tick()
    assert first.error == "" and first.rollbacks == []

    desired = retained(mosquitto, f"{DRESDEN}/desired")[f"{DRESDEN}/desired"]
    metrics = {
        "window_seconds": 300.0,
        "frames": 2000,
        "candidate_frames": 200,
        "candidate_error_rate": 0.08,
        "shadow_agreement": 0.97,
    }
    lines = [
        {"line": "dresden/line-1", "phase": "serving", "serving": "surface-classifier@2",
         "candidate": "surface-classifier@3", "stage": "canary", "metrics": metrics},
        {"line": "dresden/line-2", "phase": "serving", "serving": "surface-classifier@1"},
    ]  # fmt: skip
    with Session(address, "linefleet-test-rollback", subscriptions=["linefleet/v1/+/+/+"]) as s:
        s.connect()
        send(mosquitto, [(f"{DRESDEN}/reported", ack(desired, lines=lines), True)])
        wait_for(
            "dresden/dresden-edge-1's report",
            lambda: "dresden/dresden-edge-1" in rec.observations.devices,
            5,
            meanwhile=lambda: rec.absorb(s, 0.2),
        )

    second = rec.tick()
    assert second.error == ""
    assert len(second.rollbacks) == 1
    assert second.rollbacks[0].startswith(
        "rollback(dresden/line-1): drop canary surface-classifier@3 -> surface-classifier@2"
    )
    pull = LocalForge.for_repo(clone).find_open("linefleet/rollback/dresden-line-1")
    assert pull is not None and pull.base == "main"
    assert "max_error_rate: 0.08 > 0.01" in pull.body
    branch = git.Repo(bare).commit("linefleet/rollback/dresden-line-1")
    line = (branch.tree / "fleet/sites/dresden/lines/line-1.yaml").data_stream.read().decode()
    assert "candidate" not in line and "serving: surface-classifier@2" in line
    assert [p.hexsha for p in branch.parents] == [git.Repo(bare).commit("main").hexsha]

    assert rec.tick().rollbacks == []  # once per head: no second proposal
    assert len(LocalForge.for_repo(clone).list()) == 1
    rec.store.close()


def test_a_device_cannot_open_a_rollback_for_a_line_it_was_not_sent(
    fleet_repo: Path, tmp_path: Path, mosquitto: Mosquitto, key: SigningKey
) -> None:
    """toledo-edge-2 reports dresden/line-1 (another site's canary line) as rolled back on its
    own `reported` topic, which the ACL allows: no rollback pull request, the row is counted."""
    bare = tmp_path / "remote.git"
    git.Repo.init(bare, bare=True, initial_branch="main")
    git.Repo(fleet_repo).create_remote("origin", str(bare)).push("main:main").raise_if_error()
    clone = tmp_path / "clone"
    git.Repo.clone_from(str(bare), clone)
    address = BrokerAddress.parse(mosquitto.url)
    settings = Settings(
        clone, address, key, tmp_path / "state", "file:///x", interval=0.1, forge="local"
    )
    rec = Reconciler.open(settings)
    assert rec.tick().error == ""

    toledo = "linefleet/v1/toledo/toledo-edge-2"
    desired = retained(mosquitto, f"{toledo}/desired")[f"{toledo}/desired"]
    lines = [
        {"line": "toledo/line-2", "phase": "serving", "serving": "surface-classifier@2"},
        {"line": "dresden/line-1", "phase": "rolled_back", "serving": "surface-classifier@2",
         "previous": "surface-classifier@3"},
    ]  # fmt: skip
    with Session(address, "linefleet-test-foreign", subscriptions=["linefleet/v1/+/+/+"]) as s:
        s.connect()
        send(mosquitto, [(f"{toledo}/reported", ack(desired, lines=lines), True)])
        wait_for(
            "toledo/toledo-edge-2's report",
            lambda: "toledo/toledo-edge-2" in rec.observations.devices,
            5,
            meanwhile=lambda: rec.absorb(s, 0.2),
        )

    second = rec.tick()
    assert second.error == ""
    assert second.rollbacks == []
    assert LocalForge.for_repo(clone).list() == []
    status = fleet_status(rec.desired, rec.observations)
    (dev,) = [d for d in status.devices if d.device == "toledo-edge-2"]
    assert [row.line for row in dev.lines] == ["toledo/line-2"]
    assert dev.condition.type.value == "Synced"
    assert status.rejections["foreign_line"] == 1
    assert (
        "dresden/line-1: line not in the device's desired state"
        in (status.last_rejection["foreign_line"])
    )
    rec.store.close()
