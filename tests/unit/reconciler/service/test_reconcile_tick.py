"""The reconcile tick's error handling: temporary, terminal, and bugs (no broker needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from linefleet_core.mqtturl import BrokerAddress
from linefleet_core.signing import SigningKey
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
