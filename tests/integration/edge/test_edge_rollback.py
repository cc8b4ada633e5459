"""`linefleet edge rollback` with the broker stopped: with and without a running agent.

Two devices converge to what `publish` sent; the broker goes away; an operator rolls
`toledo/line-1` back on a device whose agent is stopped (the command switches the state itself)
and `dresden/line-1` on a device whose agent runs (the agent takes the request at its next
tick). Both then decide frames with the previous model, offline. When the broker is back the
reconciler's status shows both as rolled back by hand, diverging from git.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_puller.runner import RunOptions, run
from linefleet.cli import main
from linefleet_core.mqtturl import BrokerAddress
from linefleet_core.signing import load_trusted_keys
from tests.support import minifleet
from tests.support.mosquitto import Mosquitto
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


class Device:
    def __init__(self, tmp: Path, site: str, device: str, line: str, broker: str, keys: Path):
        self.frames = tmp / device / "frames"
        self.frames.mkdir(parents=True)
        self.results = tmp / device / "results.jsonl"
        self.state_dir = tmp / device / "state"
        self.options = RunOptions(
            site=site,
            device=device,
            broker=BrokerAddress.parse(broker),
            state_dir=self.state_dir,
            frames=str(self.frames),
            trusted_keys=load_trusted_keys([keys]),
            results=self.results,
            line=line,
            artifact_roots=(tmp / "fleet" / "artifacts",),
        )
        self.count = 0
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=run, args=(self.options, self.stop), daemon=True)
        self.thread.start()

    def halt(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(15)

    def decided_by(self, model: str) -> bool:
        """Show the agent a frame; True once the last decision came from `model`."""
        self.count += 1
        cv2.imwrite(
            str(self.frames / f"f{self.count:05d}.png"), np.full((480, 640, 3), 200, np.uint8)
        )
        if not self.results.exists():
            return False
        decided = [json.loads(x) for x in self.results.read_text().splitlines() if x]
        return bool(decided) and decided[-1].get("model") == model


def test_edge_rollback_works_with_the_broker_stopped_and_is_reported_when_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "fleet"
    minifleet.write_minifleet(root)
    minifleet.use_real_artifacts(root)
    minifleet.init_repo(root)
    minifleet.commit_all(root, "fleet with real artifacts")
    assert main(["keys", "generate", "--out", str(tmp_path / "keys"), "--format", "json"]) == 0
    keys = json.loads(capsys.readouterr().out)
    broker = Mosquitto(tmp_path / "broker").start()
    pub = Path(keys["public_key"])
    toledo = Device(tmp_path, "toledo", "toledo-edge-1", "toledo/line-1", broker.url, pub)
    dresden = Device(tmp_path, "dresden", "dresden-edge-1", "dresden/line-1", broker.url, pub)
    status = ["status", "--broker", broker.url, "--repo", str(root), "--format", "json"]

    def conditions() -> dict[str, tuple[str, str]]:
        main(status)
        devices = json.loads(capsys.readouterr().out)["devices"]
        return {d["device"]: (d["condition"], d.get("reason", "")) for d in devices}

    try:
        publish = ["publish", "--broker", broker.url, "--repo", str(root)]
        assert main([*publish, "--signing-key", keys["private_key"]]) == 0
        toledo.start()
        dresden.start()
        wait_for("toledo serves @2", lambda: toledo.decided_by("surface-classifier@2"))
        wait_for("dresden serves @2", lambda: dresden.decided_by("surface-classifier@2"))
        toledo.halt()
        broker.stop()
        capsys.readouterr()

        # No agent on toledo-edge-1: the command switches the state itself.
        args = ["edge", "rollback", "--state-dir", str(toledo.state_dir)]
        assert main([*args, "--line", "toledo/line-1", "--operator", "ana"]) == 0
        out = capsys.readouterr().out
        assert "rolled back from surface-classifier@2 to surface-classifier@1 in the state" in out
        # dresden-edge-1's agent runs (broker gone): it makes the switch at its next tick.
        args = ["edge", "rollback", "--state-dir", str(dresden.state_dir)]
        assert main([*args, "--line", "dresden/line-1", "--note", "scratches missed"]) == 0
        assert "to surface-classifier@1 by the running agent" in capsys.readouterr().out
        wait_for(
            "dresden decides with @1, offline", lambda: dresden.decided_by("surface-classifier@1")
        )
        # dresden/line-2 keeps no previous model: refused, nothing changes.
        assert main([*args, "--line", "dresden/line-2"]) == 2
        assert "no previous model" in capsys.readouterr().err
        assert main([*args, "--line", "dresden/line-9"]) == 2
        capsys.readouterr()

        toledo.start()  # restarts offline on the rolled-back assignment
        wait_for(
            "toledo decides with @1, offline", lambda: toledo.decided_by("surface-classifier@1")
        )

        broker.start()  # back online: the events and reports go out

        def both_diverge() -> bool:
            found = conditions()
            return all(
                found.get(d) == ("Degraded", "RolledBackByHand")
                for d in ("toledo-edge-1", "dresden-edge-1")
            )

        wait_for("status: both rolled back by hand", both_diverge)
        main(status)
        devices = {d["device"]: d for d in json.loads(capsys.readouterr().out)["devices"]}
        assert (
            "toledo/line-1 serves surface-classifier@1, git says surface-classifier@2"
            in (devices["toledo-edge-1"]["message"])
        )
    finally:
        toledo.halt()
        dresden.halt()
        broker.stop()
