"""The running reconciler publishes in proportion to the change (issue 17), against a real
Mosquitto and a real git repository: the first tick is a full pass; a later commit is
published from the commit the broker's marker names, touching only the devices it changes;
a missing or foreign marker sends it back to the full pass; and what the loop keeps for
status and the health gates is the fleet at the commit it published."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from linefleet_core.mqtturl import BrokerAddress
from linefleet_core.signing import SigningKey
from reconciler.service.marker import MARKER_TOPIC
from reconciler.service.reconcile import Reconciler, Settings, TickOutcome
from tests.integration.mqtt.conftest import retained, send
from tests.support import minifleet
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.integration
DESIRED = "linefleet/v1/+/+/desired"
TOL1 = "linefleet/v1/toledo/toledo-edge-1/desired"


@pytest.fixture
def loop(fleet_repo: Path, mosquitto: Mosquitto, key: SigningKey, tmp_path: Path) -> Reconciler:
    settings = Settings(
        fleet_repo,
        BrokerAddress.parse(mosquitto.url),
        key,
        tmp_path / "state",
        "file:///x",
        remote=None,
        now=minifleet.QUIET,
    )
    return Reconciler.open(settings)


def published(outcome: TickOutcome) -> tuple[str, str | None, list[str]]:
    assert outcome.error == "", outcome.error
    result = outcome.published
    assert result is not None
    return result.mode, result.full_reason, result.published_devices


def change_line_1(repo: Path, message: str, **rollout: object) -> str:
    minifleet.edit_rollout(repo, "toledo/line-1", **rollout)
    return minifleet.commit_all(repo, message)


def generations(mosquitto: Mosquitto) -> dict[str, int]:
    docs = retained(mosquitto, DESIRED)
    return {t.split("/")[3]: int(json.loads(p)["generation"]) for t, p in docs.items()}


def test_a_new_commit_is_published_from_the_marker_s_commit(
    loop: Reconciler, fleet_repo: Path, mosquitto: Mosquitto
) -> None:
    mode, why, devices = published(loop.tick())
    assert (mode, why) == ("full", "the reconciler started")
    assert sorted(devices) == ["dresden/dresden-edge-1", "toledo/toledo-edge-1",
                               "toledo/toledo-edge-2"]  # fmt: skip
    assert MARKER_TOPIC in retained(mosquitto, MARKER_TOPIC)
    before = retained(mosquitto, DESIRED)

    head = change_line_1(fleet_repo, "toledo/line-1 to canary", candidate=minifleet.TO_CANARY)
    outcome = loop.tick()
    assert published(outcome) == ("incremental", None, ["toledo/toledo-edge-1"])
    assert outcome.published is not None and outcome.published.devices == 3
    after = retained(mosquitto, DESIRED)
    assert json.loads(after[TOL1])["commit"] == head
    assert {t: p for t, p in after.items() if t != TOL1} == {
        t: p for t, p in before.items() if t != TOL1
    }  # the others were not even read back, let alone sent
    # What the loop keeps for status and the gates is the whole fleet at the new head.
    assert loop.revision is not None and loop.revision.commit == head
    assert loop.desired["toledo/toledo-edge-1"].commit == head
    assert loop.known == {("toledo", "toledo-edge-1"), ("toledo", "toledo-edge-2"),
                          ("dresden", "dresden-edge-1")}  # fmt: skip
    assert loop.store.get("last_applied_commit") == head

    # Nothing new: the marker names the head; nothing is compiled or sent.
    again = loop.tick()
    assert published(again) == ("incremental", None, [])
    assert retained(mosquitto, DESIRED) == after


@pytest.mark.parametrize("marker", [b"", b'{"kind": "Published", "commit": "forged"}'])
def test_a_missing_or_foreign_marker_sends_the_next_commit_through_the_full_pass(
    loop: Reconciler, fleet_repo: Path, mosquitto: Mosquitto, marker: bytes
) -> None:
    published(loop.tick())
    send(mosquitto, [(MARKER_TOPIC, marker, True)])  # wiped, or written by someone else
    send(mosquitto, [("linefleet/v1/dresden/dresden-edge-1/desired", b"", True)])  # lost too
    head = change_line_1(fleet_repo, "toledo/line-1: stop the shadow", candidate=None)
    mode, why, devices = published(loop.tick())
    assert mode == "full"
    assert why is not None and ("no publish marker" in why or "not ours" in why)
    # The full pass compares every device: the lost document is back, with the change.
    assert sorted(devices) == ["dresden/dresden-edge-1", "toledo/toledo-edge-1"]
    assert generations(mosquitto)["dresden-edge-1"] == 2
    assert json.loads(retained(mosquitto, TOL1)[TOL1])["commit"] == head
    # ... and leaves a marker of ours: the next change is incremental again.
    change_line_1(fleet_repo, "toledo/line-1 to canary", candidate=minifleet.TO_CANARY)
    assert published(loop.tick())[:2] == ("incremental", None)


def test_a_full_pass_runs_at_least_every_full_every_seconds(
    loop: Reconciler, fleet_repo: Path, mosquitto: Mosquitto
) -> None:
    published(loop.tick())
    send(mosquitto, [(TOL1, b"", True)])  # a document removed behind the marker's back
    assert published(loop.tick()) == ("incremental", None, [])  # not read: not repaired
    loop.settings = dataclasses.replace(loop.settings, full_every=0.0)
    assert published(loop.tick()) == ("full", "a periodic full pass", ["toledo/toledo-edge-1"])
    assert TOL1 in retained(mosquitto, TOL1)


def test_an_invalid_change_stalls_on_the_incremental_path_too(
    loop: Reconciler, fleet_repo: Path, mosquitto: Mosquitto
) -> None:
    published(loop.tick())
    bad = change_line_1(fleet_repo, "typo", serving="surface-classifier@77")
    before = retained(mosquitto, DESIRED)
    outcome = loop.tick()
    assert "surface-classifier@77" in outcome.error and outcome.retry_in == 0
    assert loop.store.get("stalled_commit") == bad
    assert retained(mosquitto, DESIRED) == before
    head = change_line_1(fleet_repo, "fixed", serving="surface-classifier@2", candidate=None)
    assert published(loop.tick()) == ("incremental", None, ["toledo/toledo-edge-1"])
    assert loop.store.get("last_applied_commit") == head


def test_a_folder_named_like_a_yaml_file_is_refused_as_validate_refuses_it(
    loop: Reconciler, fleet_repo: Path, mosquitto: Mosquitto
) -> None:
    """`validate` refuses a folder `line-9.yaml` (a line file meant, a folder made); the
    incremental pass read only the changed paths under it and never saw the folder itself."""
    assert published(loop.tick())[:2] == ("full", "the reconciler started")
    before = retained(mosquitto, DESIRED)
    lines = fleet_repo / "fleet" / "sites" / "toledo" / "lines"
    folder = lines / "line-9.yaml"
    folder.mkdir()
    (folder / "line-1.yaml").write_bytes((lines / "line-1.yaml").read_bytes())
    minifleet.commit_all(fleet_repo, "a folder where a line file was meant")
    outcome = loop.tick()
    assert outcome.published is None
    assert "line-9.yaml: a directory named like a YAML file" in outcome.error, outcome.error
    assert retained(mosquitto, DESIRED) == before


def test_a_file_name_that_is_not_utf8_is_refused_as_validate_refuses_it(
    loop: Reconciler, fleet_repo: Path, mosquitto: Mosquitto
) -> None:
    """`li\\xffne.yaml` on the incremental path: the change goes to the full pass, which
    refuses the file, named with its byte written `\\xff` (as a lone surrogate it could not
    be stored as the loop's last error: every tick ended as a bug)."""
    import os
    import subprocess

    assert published(loop.tick())[:2] == ("full", "the reconciler started")
    before = retained(mosquitto, DESIRED)
    lines = fleet_repo / "fleet" / "sites" / "toledo" / "lines"
    name = os.fsdecode(os.fsencode(lines) + b"/li\xffne.yaml")
    Path(name).write_bytes((lines / "line-1.yaml").read_bytes())
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@x"]  # (GitPython's index cannot)
    for args in (["add", "-A"], ["commit", "-qm", "a line file from a Latin-1 tool"]):
        subprocess.run([*git, *args], cwd=fleet_repo, check=True)
    outcome = loop.tick()
    assert outcome.published is None
    assert "lines/li\\xffne.yaml: a name that is not UTF-8" in outcome.error, outcome.error
    assert loop.store.get("last_error") == outcome.error
    assert retained(mosquitto, DESIRED) == before
