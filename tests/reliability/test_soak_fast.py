"""The soak's fast subset (part of `make test`): the same day and faults, a small fleet.

12 simulated devices and one real `linefleet edge run` process against a real Mosquitto (half
the simulated devices behind a site broker bridged to it): the bridge cut, broker restart, SIGKILL and restart during a publish, a short offline shift, a full disk on
the simulated devices (the real edge's disk-full recovery waits out its own 30-60 s backoff,
so it runs in `make soak` only). The full run is `make soak`; figures in docs/reliability.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.soak import Config, Soak, render

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_compressed_day_with_faults_loses_nothing_and_converges(tmp_path: Path) -> None:
    config = Config(
        devices=12,
        edges=1,
        heartbeat=2.0,
        event_every=1.0,
        shift_seconds=3.0,
        converge_timeout=45.0,
        disk_fault_on_edges=False,
    )
    soak = Soak(config, tmp_path)
    result = soak.run()
    report = render(result, "test_soak_fast")
    assert result.ok, report
    kinds = {f.kind for f in result.faults}
    assert kinds == {
        "publish",
        "bridge-cut",
        "broker-restart",
        "sigkill-restart",
        "offline-shift",
        "disk-full",
    }
    assert all(f.reconverge_seconds is not None for f in result.faults), report
    assert result.lost == {"events": 0, "reports (simulated devices)": 0}, report
    assert result.duplicates_to_consumers == 0 and result.out_of_order_to_consumers == 0
    assert result.sent["events"] > 20 and result.received["events handed to consumers"] > 20
    assert soak.edges[0].kills == 1  # the real process really died
    assert result.edge_decisions >= result.edge_frames > 0, report
    assert not result.not_converged and not result.without_model, report
