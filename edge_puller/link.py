"""The device's MQTT link: its own reconnect loop, the desired subscription, the outbox sender.

- Persistent session (`clean_session=False`) with the stable id `linefleet-device-<id>`.
- Last will `{"online":false,"protocol":1}` (retained, QoS 1) set before connecting; birth
  `{"online":true,"protocol":1}` (with `agent`) published after every connect; re-subscribe to
  `…/desired` every time.
- Reconnects with capped, jittered exponential backoff (reset after a successful connect); with
  a cluster's nodes (`mqtt://A:1883,B:1883,C:1883`) each retry goes to the next node, and the
  persistent session, kept by the cluster, resumes there.
- A sender thread delivers the outbox strictly in order, one message in flight, and acks a
  message only after the broker's PUBACK; when the outbox is empty it uploads spooled frames.
  After a reconnect it starts only once paho has re-sent what it still held unacknowledged
  (paho does that right after `on_connect`): a newer message sent earlier would overtake it.
- Received desired payloads go straight to the agent's inbox; the agent verifies them.
- Level-triggered: while connected it subscribes to `…/desired` again every `resync` seconds,
  so the broker hands back the retained document (a duplicate the agent ignores, unless a
  live delivery was lost, as a NATS cluster losing a node was seen to do).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from edge_puller.outbox import Outbox
from edge_puller.spool import Spool
from linefleet_core.backoff import Backoff
from linefleet_core.mqtturl import BrokerAddress
from linefleet_core.signing import SigningKey, canonical_json
from linefleet_core.wire import Channel, client_id, online_payload, topic

PUBACK_TIMEOUT = 5.0
RESYNC_SECONDS = 300.0
log = logging.getLogger("linefleet.edge")


def sign_payload(key: SigningKey, payload: bytes) -> bytes:
    """A report or event signed with the device's key (canonical JSON, as the reconciler
    checks it; Ed25519 is deterministic, so a re-sent message has the same bytes)."""
    try:
        body = json.loads(payload)
    except ValueError:
        return payload  # never ours; the receiver refuses it either way
    return canonical_json(key.sign(body)) if isinstance(body, dict) else payload


class Link:
    def __init__(
        self,
        broker: BrokerAddress,
        site: str,
        device: str,
        on_desired: Callable[[bytes], None],
        outbox: Outbox,
        spools: Callable[[], Iterable[Spool]] = lambda: (),
        keepalive: int = 30,
        agent: str = "",
        device_key: SigningKey | None = None,
        resync: float = RESYNC_SECONDS,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

        self.broker = broker
        self.desired_topic = topic(site, device, Channel.DESIRED)
        self.online_topic = topic(site, device, Channel.ONLINE)
        self.frames_topic = topic(site, device, Channel.FRAMES)
        self.on_desired = on_desired
        self.outbox = outbox
        self.spools = spools
        self.keepalive = keepalive
        self.agent = agent
        self.device_key = device_key  # signs every report and event that leaves the device
        self.resync = resync
        self._subscribed_at = 0.0
        self.connected = threading.Event()
        self._connack = threading.Event()
        self.connects = 0
        self.last_error = ""
        self._stop = threading.Event()
        self._backoff = Backoff(base=0.5, cap=30.0)
        self._threads: list[threading.Thread] = []
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id("device", device),
            clean_session=False,
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        client.will_set(self.online_topic, online_payload(False), qos=1, retain=True)
        broker.configure(client)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self.client = client
        self._mqtt_success = mqtt.MQTT_ERR_SUCCESS

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        for target, name in ((self._network, "mqtt-network"), (self._send, "mqtt-sender")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        """Say goodbye (`online: false`), disconnect, and join the threads."""
        if self.connected.is_set():
            info = self.client.publish(self.online_topic, online_payload(False), 1, True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout)
        self._stop.set()
        self.client.disconnect()
        for thread in self._threads:
            thread.join(timeout)

    # --- paho callbacks (network thread) --------------------------------------------------

    def _on_connect(self, client: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._problem(f"broker refused the connection: {reason}")
            return
        self._backoff.reset()
        self.connects += 1
        log.info("connected to %s:%d", client.host, client.port)
        client.subscribe(self.desired_topic, qos=1)
        self._subscribed_at = time.monotonic()
        client.publish(self.online_topic, online_payload(True, self.agent), qos=1, retain=True)
        self.last_error = ""
        self._connack.set()  # `connected` once this `loop()` returns: paho re-sends first

    def _on_subscribe(self, client: Any, _u: Any, _mid: int, codes: Any, _p: Any) -> None:
        if any(code.is_failure for code in codes):
            # Without the subscription no desired state arrives: start over (reconnect with
            # backoff, subscribe again) rather than stay connected and deaf.
            self._problem(f"broker refused the subscription to {self.desired_topic}")
            client.disconnect()

    def _problem(self, message: str) -> None:
        """Log why the broker cannot be reached once (not at every retry); serving goes on."""
        if message != self.last_error:
            log.warning("%s; serving continues, retrying with backoff", message)
        self.last_error = message

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if self.connected.is_set():
            log.warning("disconnected from the broker (%s); serving continues", reason)
        self.connected.clear()

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        if msg.topic == self.desired_topic:
            self.on_desired(bytes(msg.payload))

    # --- threads --------------------------------------------------------------------------

    def _network(self) -> None:
        first = True
        while not self._stop.is_set():
            try:
                if first:
                    self.client.connect(self.broker.host, self.broker.port, self.keepalive)
                    first = False
                else:
                    self.client.reconnect()
            except (OSError, ValueError) as exc:
                first = first and isinstance(exc, ValueError)
                where = f"{self.client.host or self.broker.host}:{self.client.port}"
                self._problem(f"broker {where}: {exc}")
                self.broker.fail_over(self.client)
                self._stop.wait(self._backoff.next())
                continue
            while not self._stop.is_set():
                try:
                    if self.client.loop(timeout=0.1) != self._mqtt_success:
                        break
                except Exception:
                    log.exception("MQTT network loop failed; reconnecting")
                    break
                if self._connack.is_set():  # the CONNACK is handled, paho's re-sends queued
                    self._connack.clear()
                    self.connected.set()
                if self.connected.is_set() and time.monotonic() - self._subscribed_at > self.resync:
                    self.client.subscribe(self.desired_topic, qos=1)  # the retained copy again
                    self._subscribed_at = time.monotonic()
            self._connack.clear()
            self.connected.clear()
            if not self._stop.is_set():
                self.broker.fail_over(self.client)
                self._stop.wait(self._backoff.next())

    def _send(self) -> None:
        while not self._stop.is_set():
            try:
                self._send_one()
            except Exception:  # a bug must not stop delivery for good
                log.exception("sending from the outbox failed; retrying")
                self._stop.wait(1.0)

    def _send_one(self) -> None:
        if not self.connected.wait(0.2):
            return
        message = self.outbox.first()
        if message is not None:
            payload = message.payload
            if self.device_key is not None and message.kind in ("report", "event"):
                payload = sign_payload(self.device_key, payload)
            if self._publish(message.topic, payload, message.retain):
                self.outbox.ack(message.id)
            return
        if not self._upload_one():
            self._stop.wait(0.1)

    def _upload_one(self) -> bool:
        for spool in self.spools():
            upload = spool.next_upload()
            if upload is None:
                continue
            path, payload = upload
            if self._publish(self.frames_topic, payload, False):
                spool.uploaded(path, len(payload))
            return True
        return False

    def _publish(self, name: str, payload: bytes, retain: bool) -> bool:
        """Publish at QoS 1 and wait for the PUBACK; False if it did not come."""
        info = self.client.publish(name, payload, qos=1, retain=retain)
        try:
            info.wait_for_publish(PUBACK_TIMEOUT)
        except (RuntimeError, ValueError):
            self._stop.wait(0.2)
            return False
        return bool(info.is_published())
