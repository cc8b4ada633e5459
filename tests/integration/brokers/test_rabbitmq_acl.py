"""`linefleet broker config --engine rabbitmq` on a real RabbitMQ node (docs/protocol.md, 14):
each device account reads only its own `desired` topic and writes only its own status topics,
the reconciler's account publishes the fleet (by exact topic: RabbitMQ's plugin hands retained
messages to no wildcard); a device cannot read (or overwrite) another's."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from linefleet.cli import main
from linefleet_core.signing import SigningKey
from linefleet_core.wire import client_id
from reconciler.broker import (
    RABBITMQ_CONF,
    RABBITMQ_DEFINITIONS,
    rabbit_password_hash,
    routing_key,
)
from tests.support import minifleet
from tests.support.brokers import require
from tests.support.rabbitmq import RabbitMQ

pytestmark = pytest.mark.integration
T = "linefleet/v1"
OWN = f"{T}/toledo/toledo-edge-1/desired"
OTHER = f"{T}/toledo/toledo-edge-2/desired"


class Client:
    def __init__(self, port: int, user: str, password: str, cid: str) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.subacks: dict[int, list[Any]] = {}
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=cid, protocol=MQTTProtocolVersion.MQTTv311
        )
        self.client.username_pw_set(user, password)
        self.client.on_message = lambda _c, _u, m: self.got.append((m.topic, bytes(m.payload)))
        self.client.on_subscribe = lambda _c, _u, mid, codes, _p: self.subacks.update(
            {mid: list(codes)}
        )
        self.connected: list[Any] = []
        self.client.on_connect = lambda _c, _u, _f, rc, _p: self.connected.append(rc)
        self.closed = False  # the broker closed the connection (how RabbitMQ refuses)
        self.client.on_disconnect = lambda _c, _u, _f, _rc, _p: setattr(self, "closed", True)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        deadline = time.monotonic() + 20
        while not self.connected and time.monotonic() < deadline:
            time.sleep(0.05)

    @property
    def accepted(self) -> bool:
        return bool(self.connected) and not self.connected[0].is_failure

    def subscribe(self, topic_filter: str) -> bool:
        """Whether the broker granted the subscription (QoS 1): a failure SUBACK, or no SUBACK
        because the broker closed the connection, is a refusal."""
        _, mid = self.client.subscribe(topic_filter, qos=1)
        deadline = time.monotonic() + 10
        while mid not in self.subacks and not self.closed and time.monotonic() < deadline:
            time.sleep(0.05)
        return mid in self.subacks and not self.subacks[mid][0].is_failure

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained_payload(client: Client, topic: str, timeout: float = 5.0) -> bytes | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [p for t, p in client.got if t == topic]
        if found:
            return found[-1]
        time.sleep(0.05)
    return None


def test_password_hashes_and_routing_keys_are_rabbitmq_s() -> None:
    salt = bytes.fromhex("908dc60a")
    expected = base64.b64encode(salt + hashlib.sha256(salt + b"test12").digest()).decode()
    assert rabbit_password_hash("test12", salt) == expected
    assert routing_key("linefleet/v1/toledo/t-1/desired") == "linefleet.v1.toledo.t-1.desired"


def test_a_device_reads_only_its_own_desired_state_on_rabbitmq(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require("rabbitmq")
    repo = tmp_path / "fleet"
    minifleet.write_minifleet(repo)
    node = RabbitMQ(tmp_path / "rabbit")
    out = tmp_path / "broker"
    argv = ["broker", "config", "--engine", "rabbitmq", "--repo", str(repo), "--out", str(out)]
    argv += ["--port", str(node.port), "--bind", "127.0.0.1", "--amqp-port", str(node.amqp_port)]
    assert main(argv) == 0
    assert "3 devices" in capsys.readouterr().out
    assert (out / RABBITMQ_DEFINITIONS).stat().st_mode & 0o077 == 0  # password hashes inside
    creds = json.loads((out / "credentials.json").read_text())
    node.config = (out / RABBITMQ_CONF).read_text()

    with node:
        anonymous = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="t-anonymous")
        refused: list[Any] = []
        anonymous.on_connect = lambda _c, _u, _f, rc, _p: refused.append(rc)
        anonymous.connect("127.0.0.1", node.port)
        anonymous.loop_start()
        deadline = time.monotonic() + 10
        while not refused and time.monotonic() < deadline:
            time.sleep(0.05)
        anonymous.loop_stop()
        assert refused and refused[0].is_failure  # no account: no connection

        key = SigningKey.generate().write(tmp_path / "keys")[0]
        minifleet.init_repo(repo)
        minifleet.commit_all(repo, "fleet")
        url = f"mqtt://linefleet-reconciler:{creds['linefleet-reconciler']}@127.0.0.1:{node.port}"
        publish = ["publish", "--broker", url, "--repo", str(repo), "--signing-key", str(key)]
        assert main([*publish, "--artifact-base", "file:///x"]) == 0
        assert "3 published" in capsys.readouterr().out
        assert main(["status", "--broker", url, "--repo", str(repo)]) == 0
        assert "3 device(s)" in capsys.readouterr().out

        device = client_id("device", "toledo-edge-1")
        edge = Client(node.port, "toledo-edge-1", creds["toledo-edge-1"], device)
        assert edge.accepted
        assert edge.subscribe(OWN)
        own = retained_payload(edge, OWN)
        assert own is not None and json.loads(own)["device"] == "toledo-edge-1"
        assert not edge.subscribe(OTHER)  # another device's document: refused
        edge.close()
        edge = Client(node.port, "toledo-edge-1", creds["toledo-edge-1"], device)
        assert not edge.subscribe(f"{T}/+/+/desired")  # the fleet's wildcard: refused
        edge.close()

        # its own status is accepted; another's desired state is not stored
        edge = Client(node.port, "toledo-edge-1", creds["toledo-edge-1"], device)
        info = edge.client.publish(f"{T}/toledo/toledo-edge-1/reported", b'{"ok": 1}', 1, True)
        info.wait_for_publish(10)
        edge.client.publish(OTHER, b"forged", qos=1, retain=True)
        time.sleep(1.0)
        edge.close()
        reader = Client(
            node.port, "linefleet-reconciler", creds["linefleet-reconciler"], "t-reader"
        )
        assert reader.subscribe(f"{T}/toledo/toledo-edge-1/reported")
        assert reader.subscribe(OTHER)
        assert retained_payload(reader, f"{T}/toledo/toledo-edge-1/reported") == b'{"ok": 1}'
        other = retained_payload(reader, OTHER)
        assert other is not None and json.loads(other)["device"] == "toledo-edge-2"
        reader.close()

        # a device account cannot use another device's client id (its session queue)
        thief = Client(
            node.port, "toledo-edge-1", creds["toledo-edge-1"], client_id("device", "toledo-edge-2")
        )
        assert not (thief.accepted and thief.subscribe(OWN))
        thief.close()
