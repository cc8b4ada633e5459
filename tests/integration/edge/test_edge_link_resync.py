"""The edge link re-subscribes to its desired topic while connected (`Link.resync`), so a
document whose live delivery was lost still arrives: the broker hands back the retained copy.
Counted here: one delivery on connect, then one more per resync period, with no reconnect.
(A delivery really lost is tested where it happens: tests/integration/brokers/
test_nats_node_loss.py.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_puller.link import Link
from edge_puller.outbox import Outbox
from linefleet_core.mqtturl import BrokerAddress
from tests.integration.mqtt.conftest import send
from tests.support.mosquitto import Mosquitto
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
DESIRED = "linefleet/v1/plant/dev-1/desired"


def test_the_retained_document_comes_again_each_resync_without_a_reconnect(
    tmp_path: Path,
) -> None:
    got: list[bytes] = []
    with Mosquitto(tmp_path / "broker") as broker:
        send(broker, [(DESIRED, b"document", True)])
        link = Link(
            BrokerAddress.parse(broker.url),
            "plant",
            "dev-1",
            got.append,
            Outbox(tmp_path / "outbox.db"),
            resync=0.3,
        )
        link.start()
        try:
            wait_for("three deliveries of the retained document", lambda: len(got) >= 3)
            assert set(got) == {b"document"}
            assert link.connects == 1  # re-subscribed, never reconnected
        finally:
            link.stop()
