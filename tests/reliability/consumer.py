"""The soak's receiver: a persistent-session subscriber that audits every delivery.

It subscribes like `linefleet reconcile` does (stable client id, clean session off, re-subscribe
on every connect) and passes every message through `reconciler.observed.Observations.ingest`,
the reconciler's own classification and event de-duplication. Around that it keeps the audit
the reconciler does not need: every raw delivery, every `seq` and `report_seq` handed to the
consumer, so the harness can count losses, redeliveries, and duplicates or reorders that got
*past* de-duplication (the ones that would reach a user; target 0).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from linefleet_core.wire import Event, ReportedState
from reconciler.observed import Accepted, Observations


@dataclass
class Audit:
    deliveries: Counter[str] = field(default_factory=Counter)  # by channel, raw
    retained_replays: int = 0
    events_delivered: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    reports_delivered: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    event_redeliveries: int = 0  # dropped by `seq` de-duplication
    report_redeliveries: int = 0  # dropped by `report_seq` de-duplication
    rejected: Counter[str] = field(default_factory=Counter)
    connects: int = 0
    raw_reports: dict[str, list[tuple[int, bool]]] = field(
        default_factory=lambda: defaultdict(list)
    )  # (report_seq, retained) in arrival order, before de-duplication: for diagnosis
    raw_events: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))


class Consumer:
    def __init__(self, host: str, port: int, name: str = "soak") -> None:
        self.obs = Observations()
        self.audit = Audit()
        self.lock = threading.Lock()
        self.applied: dict[str, tuple[int, str]] = {}  # device key -> (generation, content hash)
        self.errors: dict[str, str] = {}
        self._last_report_seq: dict[str, int] = {}
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"linefleet-reconciler-{name}",
            clean_session=False,
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(0.2, 2.0)  # type: ignore[arg-type]  # paho takes floats
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        self.client = client
        client.connect_async(host, port, keepalive=30)
        client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            return
        with self.lock:
            self.audit.connects += 1
        for channel in ("reported", "events", "online"):
            client.subscribe(f"linefleet/v1/+/+/{channel}", qos=1)

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        payload = bytes(msg.payload)
        with self.lock:
            channel = msg.topic.rsplit("/", 1)[-1]
            self.audit.deliveries[channel] += 1
            if msg.retain:
                self.audit.retained_replays += 1
            if channel == "events":
                with contextlib.suppress(ValueError, AttributeError, TypeError):
                    seq = json.loads(payload).get("seq")
                    site, device = msg.topic.split("/")[2:4]
                    self.audit.raw_events[f"{site}/{device}"].append(int(seq))
            before = self.obs.rejections["duplicate_event"]
            result = self.obs.ingest(msg.topic, payload, time.time(), live=not msg.retain)
            if not isinstance(result, Accepted):
                if self.obs.rejections["duplicate_event"] > before:
                    self.audit.event_redeliveries += 1
                else:
                    self.audit.rejected[result.reason.value] += 1
                return
            key = f"{result.site}/{result.device}"
            message = result.message
            if isinstance(message, ReportedState):
                seq = json.loads(payload).get("report_seq")
                if isinstance(seq, int):
                    self.audit.raw_reports[key].append((seq, bool(msg.retain)))
            if isinstance(message, Event):
                self.audit.events_delivered[key].append(message.seq)
            elif isinstance(message, ReportedState):
                self._report(key, message, payload)

    def _report(self, key: str, message: ReportedState, payload: bytes) -> None:
        seq = json.loads(payload).get("report_seq")
        if isinstance(seq, int):  # a simulated device: audit exactly-once delivery
            if seq <= self._last_report_seq.get(key, 0):
                self.audit.report_redeliveries += 1
                return
            self._last_report_seq[key] = seq
            self.audit.reports_delivered[key].append(seq)
        if message.applied is not None:
            self.applied[key] = (message.applied.generation, message.applied.content_hash)
        self.errors[key] = message.error

    def converged(self, expected: dict[str, str]) -> list[str]:
        """Devices whose last report does not show `expected[device]` applied."""
        with self.lock:
            return [k for k, h in expected.items() if self.applied.get(k, (0, ""))[1] != h]
