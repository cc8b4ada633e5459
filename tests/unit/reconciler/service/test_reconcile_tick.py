"""The reconcile tick's error handling: temporary, terminal, and bugs; what it keeps of a
publish for status (no broker needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from linefleet_core.fleet import EdgeDevice
from linefleet_core.mqtturl import BrokerAddress
from linefleet_core.signing import SigningKey
from linefleet_core.spec import FleetSpec
from linefleet_core.wire import DesiredState
from reconciler.service import compile as compiling
from reconciler.service.compile import Documents, compile_fleet
from reconciler.service.incremental import Pass
from reconciler.service.publish import Result, load_revision
from reconciler.service.reconcile import Reconciler, Settings, backoff
from tests.support import minifleet
from tests.support.mosquitto import free_port


@pytest.fixture
def rec(tmp_path: Path) -> Reconciler:
    repo = tmp_path / "repo"
    minifleet.write_minifleet(repo)
    minifleet.init_repo(repo)
    minifleet.commit_all(repo, "fleet")
    address = BrokerAddress.parse(f"mqtt://127.0.0.1:{free_port()}")  # nobody listens
    settings = Settings(repo, address, SigningKey.generate(), tmp_path / "state", "file:///x")
    return Reconciler.open(settings)


def test_an_unreachable_broker_is_retried_with_growing_backoff(rec: Reconciler) -> None:
    first, second = rec.tick(), rec.tick()
    assert "unreachable" in first.error
    assert 1.0 <= first.retry_in <= 2.0 <= second.retry_in <= 4.0
    assert rec.failures == 2
    assert rec.store.get("last_attempted_commit") == first.commit
    assert rec.store.get("last_applied_commit") is None


def test_an_invalid_commit_is_terminal_until_the_branch_moves(rec: Reconciler) -> None:
    minifleet.edit_rollout(rec.settings.repo, "toledo/line-1", serving="surface-classifier@77")
    minifleet.commit_all(rec.settings.repo, "typo")
    out = rec.tick()
    assert "surface-classifier@77" in out.error and out.retry_in == 0
    assert rec.store.get("stalled_commit") == out.commit
    again = rec.tick()
    assert again.error == out.error  # not retried: nothing new to try


def test_a_bug_in_a_tick_does_not_end_the_loop(
    rec: Reconciler, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom() -> str:
        raise RuntimeError("boom")

    monkeypatch.setattr(rec, "head", boom)
    out = rec.safe_tick()
    assert out.error == "unexpected RuntimeError: boom (a bug; retrying)"
    assert out.retry_in > 0


def test_backoff_is_capped_and_jittered() -> None:
    values = [backoff(n, 1.0) for n in range(1, 30)]
    assert all(0.5 <= v <= 60.0 for v in values)
    assert max(values) > 20.0


@pytest.mark.parametrize("mode", ["full", "incremental"])
def test_the_documents_kept_for_status_are_compiled_only_when_read(
    rec: Reconciler, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """After a full pass the loop keeps its documents as they are (those the forked worker
    signed are not compiled here), after an incremental one the fleet at the commit: either
    is compiled when fleet status first reads it, and not before (a loop without a forge
    never does)."""
    revision = load_revision(rec.settings.repo, "HEAD")
    at = (revision.spec, revision.commit, revision.generation, "file:///x", revision.approval)
    docs = Documents(*at)
    docs.compile(["toledo-edge-1"])  # what the publisher compiled; the worker signed the rest
    compiled: list[str] = []
    real = compiling.compile_device

    def counted(spec: FleetSpec, device: EdgeDevice, *rest: Any) -> DesiredState:
        compiled.append(device.id)
        return real(spec, device, *rest)

    monkeypatch.setattr(compiling, "compile_device", counted)
    result = Result(revision.commit, revision.generation, len(docs), mode=mode)

    rec.adopt(Pass(result, revision, docs if mode == "full" else {}))

    assert compiled == []
    assert rec.known == {("toledo", "toledo-edge-1"), ("toledo", "toledo-edge-2"),
                         ("dresden", "dresden-edge-1")}  # fmt: skip
    assert rec.desired["toledo/toledo-edge-2"].device == "toledo-edge-2"
    kept = dict(rec.desired)
    assert sorted(compiled) == sorted(["dresden-edge-1", "toledo-edge-2"] if mode == "full"
                                      else ["dresden-edge-1", "toledo-edge-1", "toledo-edge-2"])  # fmt: skip
    assert kept == {f"{d.site}/{d.device}": d for d in compile_fleet(*at).values()}


def test_the_loop_keeps_a_devices_last_refused_report_across_a_restart(rec: Reconciler) -> None:
    """The reconcile loop writes a device's last refused message with the device (it wrote
    only the fleet-wide counters): a restarted reconciler, and `status --state-dir`, still say
    why the device's reports are refused. A stranger's garbage adds no device."""
    import time

    from linefleet_core.mqttsession import Message
    from reconciler.service.fleetstatus import fleet_status
    from reconciler.service.store import Store

    class Drained:
        def drain(self, quiet: float, limit: float) -> list[Message]:
            now = time.time()
            return [
                Message("linefleet/v1/dresden/dresden-edge-1/reported", b"{", False, now),
                Message("linefleet/v1/dresden/ghost-1/reported", b"{", False, now),
            ]

    rec.known = {("dresden", "dresden-edge-1")}
    assert rec.absorb(Drained(), 0.0) == 2  # type: ignore[arg-type]
    rec.store.close()
    again = Store(rec.settings.state_dir).load()
    assert sorted(again.devices) == ["dresden/dresden-edge-1"]
    (dev,) = fleet_status({}, again).devices
    assert dev.condition.reason == "ReportRefused"
    assert dev.condition.message.startswith(
        "no report accepted; the last message on its topics was refused: "
        "linefleet/v1/dresden/dresden-edge-1/reported: malformed: not UTF-8 JSON"
    )
    assert again.rejections == {"malformed": 1, "unknown_device": 1}
