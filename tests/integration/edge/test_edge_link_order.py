"""The edge link never lets a newer message overtake one paho still holds unacknowledged.

After a reconnect paho re-sends what it holds unacknowledged right after calling `on_connect`.
If the sender thread published the outbox's head in between, a newer report reached the broker
before an older one, and the broker retained the older one. Here the link dies silently while
two reports are in flight, a third replaces them in the outbox, and `on_connect` is slowed down
(as a busy scheduler would) to widen that window.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import edge_puller.link as link_module
from edge_puller.link import Link
from edge_puller.outbox import Outbox
from linefleet_core.mqtturl import BrokerAddress
from tests.reliability.faults import TcpProxy
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.integration
REPORTED = "linefleet/v1/plant/dev-1/reported"


def wait_for(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def retained_report(broker: Mosquitto) -> int:
    got: list[bytes] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="order-reader")
    client.on_message = lambda _c, _u, msg: got.append(bytes(msg.payload))
    client.connect(broker.host, broker.port)
    client.subscribe(REPORTED, qos=1)
    client.loop_start()
    try:
        wait_for("the retained report", lambda: bool(got))
    finally:
        client.loop_stop()
        client.disconnect()
    return int(json.loads(got[0])["n"])


def test_a_reconnect_resends_the_backlog_before_anything_newer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(link_module, "PUBACK_TIMEOUT", 0.3)
    with Mosquitto(tmp_path / "broker") as broker:
        proxy = TcpProxy(broker.port)
        outbox = Outbox(tmp_path / "outbox.db")
        address = BrokerAddress.parse(f"mqtt://{proxy.host}:{proxy.port}")
        link = Link(address, "plant", "dev-1", lambda _p: None, outbox, keepalive=1)
        connected = link.client.on_connect
        assert connected is not None

        def slow_on_connect(*args: Any) -> None:
            connected(*args)
            time.sleep(0.5)  # the network thread is descheduled before paho's re-sends

        link.client.on_connect = slow_on_connect
        link.start()
        try:
            wait_for("the link", link.connected.is_set)
            proxy.stall()  # a dead link: nothing arrives, nothing is acknowledged
            for n in (1, 2):  # each is published and left unacknowledged in paho
                outbox.put_report(REPORTED, json.dumps({"n": n}).encode())
                time.sleep(0.5)
            wait_for("the keepalive to notice", lambda: not link.connected.is_set())
            outbox.put_report(REPORTED, json.dumps({"n": 3}).encode())  # replaces report 2
            wait_for("the outbox to drain", lambda: outbox.size() == 0)
            time.sleep(0.5)  # whatever paho still re-sends has arrived
            assert retained_report(broker) == 3
            assert link.connects >= 2
        finally:
            link.stop()
            outbox.close()
            proxy.close()
