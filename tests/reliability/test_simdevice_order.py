"""A reconnecting device must not let a new message overtake one the broker has not acknowledged.

The soak's losses (docs/reliability.md) were this: a simulated device kept several messages
in flight; paho re-sends unacknowledged messages only after the CONNACK of a reconnect, but a
message published while that CONNACK is on its way goes out at once. The newer `seq` reached
the consumer first and the older one was then dropped as a duplicate (`seq <= last`). Here the
broker's CONNACK is held back (`TcpProxy.reply_delay`) while the device keeps producing events.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.consumer import Consumer
from tests.reliability.faults import TcpProxy
from tests.reliability.simdevice import SimDevice
from tests.support.mosquitto import Mosquitto
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
KEY = "plant-a/sim-0001"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker") as running:
        yield running


def test_events_published_during_a_slow_reconnect_arrive_in_order(broker: Mosquitto) -> None:
    proxy = TcpProxy(broker.port)
    consumer = Consumer(broker.host, broker.port, name="order")
    sim = SimDevice("plant-a", "sim-0001", proxy.host, proxy.port, {}, 1e9, 0.0, seed=1)
    stop = threading.Event()

    def ticker() -> None:
        while not stop.is_set():
            sim.tick(time.monotonic())
            stop.wait(0.01)

    thread = threading.Thread(target=ticker, daemon=True)
    try:
        sim.start()
        thread.start()
        wait_for("the consumer's subscriptions", lambda: consumer.audit.deliveries["online"] > 0)
        sim.event_every = 0.02  # an event every tick or two
        time.sleep(0.3)
        proxy.cut()  # unacknowledged events pile up on the device
        time.sleep(0.5)
        proxy.reply_delay = 0.6
        proxy.restore()  # reconnect; the CONNACK takes 0.6 s while events keep coming
        wait_for("the reconnect", lambda: sim.client is not None and sim.client.is_connected())
        time.sleep(0.5)
        sim.event_every = 0.0
        wait_for("the device's outbox to drain", lambda: not sim.disk.outbox)
        issued = sim.counters.events
        wait_for(
            "every event at the consumer",
            lambda: len(set(consumer.audit.raw_events[KEY])) >= issued,
        )
    finally:
        stop.set()
        thread.join(5)
        sim.stop()
        consumer.close()
        proxy.close()
    arrivals = consumer.audit.raw_events[KEY]
    assert issued > 20, arrivals  # enough traffic on both sides of the reconnect
    assert consumer.audit.events_delivered[KEY] == list(range(1, issued + 1)), arrivals
