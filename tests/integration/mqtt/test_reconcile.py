"""`linefleet reconcile` as a process: follows a bare remote, records reports, survives restarts."""

from __future__ import annotations

import dataclasses
import json
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import git
import pytest

from linefleet_core.mqtturl import BrokerAddress
from linefleet_core.signing import SigningKey
from reconciler.service.reconcile import Reconciler as Loop
from reconciler.service.reconcile import Settings, TickOutcome
from tests.integration.mqtt.conftest import (
    ACTIVATION,
    EVENT_TOPIC,
    ack,
    activation_recorded,
    retained,
    send,
)
from tests.support import minifleet
from tests.support.mosquitto import Mosquitto
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
T = "linefleet/v1"
TOL2 = f"{T}/toledo/toledo-edge-2"


@pytest.fixture
def remote(fleet_repo: Path, tmp_path: Path) -> Path:
    bare = tmp_path / "remote.git"
    git.Repo.init(bare, bare=True, initial_branch="main")
    work = git.Repo(fleet_repo)
    work.create_remote("origin", str(bare))
    minifleet_push(fleet_repo)
    return bare


def minifleet_push(repo: Path) -> None:
    git.Repo(repo).remote("origin").push("main:main").raise_if_error()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    private, _ = SigningKey.generate().write(tmp_path / "keys")
    return private


class Reconciler:
    def __init__(self, clone: Path, broker: Mosquitto, key: Path, state: Path) -> None:
        self.argv = [
            sys.executable,
            "-m",
            "linefleet",
            "reconcile",
            "--broker",
            broker.url,
            "--repo",
            str(clone),
            "--state-dir",
            str(state),
            "--signing-key",
            str(key),
            "--interval",
            "0.3",
        ]
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def stop(self) -> tuple[int, str, str]:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=20)
        return self.proc.returncode, out, err


@pytest.fixture
def reconciler(
    remote: Path, tmp_path: Path, mosquitto: Mosquitto, key_file: Path
) -> Iterator[Reconciler]:
    clone = tmp_path / "clone"
    git.Repo.clone_from(str(remote), clone)
    rec = Reconciler(clone, mosquitto, key_file, tmp_path / "state")
    yield rec
    if rec.proc is not None and rec.proc.poll() is None:
        rec.proc.kill()
        rec.proc.wait()


def desired_generation(broker: Mosquitto, topic: str) -> int | None:
    payload = retained(broker, topic, quiet=0.2).get(topic)
    return None if not payload else int(json.loads(payload)["generation"])


def loop_settings(fleet_repo: Path, broker: Mosquitto, tmp_path: Path, **kw: Any) -> Settings:
    """The in-process loop's settings: the fleet repository itself (no remote), a new key."""
    return Settings(
        fleet_repo,
        BrokerAddress.parse(broker.url),
        SigningKey.generate(),
        tmp_path / "state",
        "file:///x",
        remote=None,
        **kw,
    )


def test_follows_the_branch_records_reports_and_survives_a_restart(
    reconciler: Reconciler, fleet_repo: Path, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    reconciler.start()
    wait_for("first publish", lambda: desired_generation(mosquitto, f"{TOL2}/desired") == 1)
    first = retained(mosquitto, f"{TOL2}/desired")[f"{TOL2}/desired"]
    event = {
        "protocol": 1,
        "kind": "Event",
        "site": "toledo",
        "device": "toledo-edge-2",
        "at": "2026-11-21T10:00:00Z",
        "type": "activation",
    }
    send(
        mosquitto,
        [
            (f"{TOL2}/reported", ack(first), True),
            (f"{TOL2}/events", json.dumps({**event, "seq": 1}).encode(), False),
            (f"{TOL2}/events", json.dumps({**event, "seq": 1}).encode(), False),  # duplicate
            (f"{T}/toledo/ghost/reported", b"{}", True),  # unknown device
            (f"{TOL2}/reported", b"\x00garbage", False),  # malformed, never crashes it
        ],
    )
    minifleet.edit_rollout(fleet_repo, "toledo/line-2", candidate=None)
    minifleet.commit_all(fleet_repo, "toledo/line-2: stop the shadow")
    minifleet_push(fleet_repo)
    wait_for("new commit", lambda: desired_generation(mosquitto, f"{TOL2}/desired") == 2)
    code, out, err = reconciler.stop()
    assert code == 0, err
    assert "SIGTERM, stopping" in err
    assert "generation 2: 2 published, 1 unchanged" in out

    # While it is down, the device keeps talking (QoS 1, persistent session).
    send(mosquitto, [(f"{TOL2}/events", json.dumps({**event, "seq": 2}).encode(), False)])
    reconciler.start()
    db = tmp_path / "state" / "reconciler.sqlite3"

    def has_seq_2() -> bool:
        with sqlite3.connect(db) as conn:
            row = conn.execute("SELECT last_seq FROM device WHERE device='toledo-edge-2'")
            return row.fetchone() == (2,)

    wait_for("the event sent while the reconciler was down", has_seq_2)
    code, _, err = reconciler.stop()
    assert code == 0, err
    with sqlite3.connect(db) as conn:
        counts = dict(conn.execute("SELECT reason, count FROM rejection").fetchall())
        events = json.loads(
            conn.execute("SELECT events FROM device WHERE device='toledo-edge-2'").fetchone()[0]
        )
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    assert [e["seq"] for e in events] == [1, 2]
    assert counts["duplicate_event"] == 1 and counts["malformed"] >= 1
    assert counts["unknown_device"] >= 1
    assert meta["last_applied_commit"] == git.Repo(fleet_repo).head.commit.hexsha
    assert meta["last_error"] == ""


def test_an_invalid_commit_stalls_until_the_branch_moves(
    reconciler: Reconciler, fleet_repo: Path, mosquitto: Mosquitto
) -> None:
    minifleet.edit_rollout(fleet_repo, "toledo/line-2", serving="surface-classifier@99")
    minifleet.commit_all(fleet_repo, "broken")
    minifleet_push(fleet_repo)
    reconciler.start()
    assert reconciler.proc is not None and reconciler.proc.stdout is not None
    line = reconciler.proc.stdout.readline()
    assert "error at" in line and "surface-classifier@99" in line
    minifleet.edit_rollout(fleet_repo, "toledo/line-2", serving="surface-classifier@2")
    minifleet.commit_all(fleet_repo, "fixed")
    minifleet_push(fleet_repo)
    wait_for("the fix", lambda: desired_generation(mosquitto, f"{TOL2}/desired") == 3)
    code, _, err = reconciler.stop()
    assert code == 0, err


def test_a_reconcile_tick_holds_a_promotion_during_a_freeze_and_lets_it_out_after(
    fleet_repo: Path, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """Issue 12: `reconcile` published what was merged, frozen site or not."""

    settings = loop_settings(fleet_repo, mosquitto, tmp_path, now=minifleet.IN_FREEZE)
    loop = Loop.open(settings)
    first = loop.tick()
    assert first.error == "" and first.published is not None
    canary = {"model": "surface-classifier@3", "stage": "canary", "canary_fraction": 0.1}
    minifleet.edit_rollout(fleet_repo, "toledo/line-1", candidate=canary)
    minifleet.commit_all(fleet_repo, "promote toledo/line-1 to canary")

    held = loop.tick().published
    assert held is not None and held.published_devices == []
    assert [n.split(" waits:")[0] for n in held.held] == ["toledo/toledo-edge-1: toledo/line-1"]
    doc = json.loads(
        retained(mosquitto, f"{T}/toledo/toledo-edge-1/desired")[
            f"{T}/toledo/toledo-edge-1/desired"
        ]
    )
    assert doc["commit"] == first.commit  # still names what the device runs

    loop.settings = dataclasses.replace(settings, now=minifleet.QUIET.replace(year=2027))
    out = loop.tick().published
    assert out is not None and out.held == [] and out.published_devices == ["toledo/toledo-edge-1"]


def test_what_a_device_sends_during_the_first_tick_is_recorded(
    fleet_repo: Path, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """The loop subscribes before it ticks: a live event sent while the first (at scale, long)
    publish runs is queued for the reconciler's session, not lost before the session exists."""

    settings = loop_settings(fleet_repo, mosquitto, tmp_path, interval=0.3)
    sent: list[str] = []

    def during_the_first_tick(outcome: TickOutcome) -> None:
        if not sent:  # before the loop absorbs anything: as if sent while it published
            send(mosquitto, [(EVENT_TOPIC, ACTIVATION, False)])
            sent.append(outcome.commit or "")

    stop = threading.Event()
    loop = Loop.open(settings)
    runner = threading.Thread(target=loop.run, args=(stop, during_the_first_tick), daemon=True)
    runner.start()
    try:
        wait_for(
            "the event sent during the first tick recorded",
            lambda: activation_recorded(tmp_path / "state"),
            timeout=15,
        )
    finally:
        stop.set()
        runner.join(20)
    assert sent and not runner.is_alive()
