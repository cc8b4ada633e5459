"""The trainer's listener on a broker given as a list of nodes (`mqtt://A:P,B:P`) uses every
node, as the reconciler and the edge do: the first that answers, and the next when its node
dies mid-listen. Two real Mosquittos stand in for two nodes (each with its own sessions, so
the listener must subscribe again on the node it moves to)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from linefleet_core import wire
from linefleet_core.errors import TemporaryError
from tests.support.mosquitto import Mosquitto, free_port
from trainer.mqtt_listen import listen

pytestmark = pytest.mark.integration
EVENTS = wire.topic("toledo", "tol-edge-01", wire.Channel.EVENTS)


class Sender:
    """Publishes a numbered event (QoS 1) to one broker every 0.1 s, from a thread."""

    def __init__(self) -> None:
        self.target: Mosquitto | None = None
        self.sent: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self.stop.wait(0.1):
            broker = self.target
            if broker is None:
                continue
            n += 1
            name = f"{broker.port}-{n}"
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"edge-{name}")
            try:
                client.connect(broker.host, broker.port)
                client.loop_start()
                client.publish(EVENTS, json.dumps({"n": name}).encode(), qos=1).wait_for_publish(2)
                self.sent.append(name)
            except (OSError, RuntimeError, ValueError):
                pass  # the broker was just killed
            finally:
                client.disconnect()
                client.loop_stop()


def received(events: list[bytes], broker: Mosquitto) -> list[str]:
    names = [str(json.loads(e)["n"]) for e in events]
    return [n for n in names if n.startswith(f"{broker.port}-")]


def test_the_first_node_that_answers_is_used(tmp_path: Path) -> None:
    dead = free_port()  # nobody listens there
    with Mosquitto(tmp_path / "b") as live:
        url = f"mqtt://127.0.0.1:{dead},127.0.0.1:{live.port}"
        sender = Sender()
        sender.target = live
        sender.thread.start()
        try:
            events, _ = listen(url, 1.5)
        finally:
            sender.stop.set()
            sender.thread.join()
        assert received(events, live)
    with pytest.raises(TemporaryError, match=f"unreachable: 127.0.0.1:{dead}: .*127.0.0.1:"):
        listen(f"mqtt://127.0.0.1:{dead},127.0.0.1:{live.port}", 0.1)


def test_a_node_lost_mid_listen_hands_over_to_the_next(tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "a") as a, Mosquitto(tmp_path / "b") as b:
        url = f"mqtt://127.0.0.1:{a.port},127.0.0.1:{b.port}"
        out: list[tuple[list[bytes], list[bytes]]] = []
        listener = threading.Thread(target=lambda: out.append(listen(url, 8.0)), daemon=True)
        sender = Sender()
        sender.thread.start()
        listener.start()
        try:
            sender.target = a
            deadline = time.monotonic() + 4
            while len(sender.sent) < 5 and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)  # a few of them delivered to the listener
            a.kill()
            sender.target = b
            listener.join(20)
        finally:
            sender.stop.set()
            sender.thread.join()
        assert out, "listen() did not return"
        events, _ = out[0]
        assert received(events, a), "nothing from the first node before it died"
        assert received(events, b), "the listener did not move to the second node"
