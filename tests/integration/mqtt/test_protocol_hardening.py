"""Protocol hardening (issue 12 item 8) on a real Mosquitto with the real reconciler.

- A reinstalled device (a new event store: `seq` from 1 again) is not taken for duplicates.
- Removal is a signed tombstone; the reconciler clears the removed device's retained topics.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from edge_puller.events import event_builder
from edge_puller.outbox import Outbox
from linefleet_core.mqttsession import Session
from linefleet_core.mqtturl import BrokerAddress
from linefleet_core.signing import SigningKey
from linefleet_core.wire import Event
from reconciler.service.reconcile import Reconciler, Settings
from reconciler.service.store import Store
from tests.integration.mqtt.conftest import ack, retained, send
from tests.support.mosquitto import Mosquitto
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
TOL2 = "linefleet/v1/toledo/toledo-edge-2"


def drain(outbox: Outbox) -> list[tuple[str, bytes, bool]]:
    """What the device's link would send, in order (and acknowledged)."""
    out = []
    while (msg := outbox.first()) is not None:
        out.append((msg.topic, msg.payload, msg.retain))
        outbox.ack(msg.id)
    return out


def emit(outbox: Outbox, n: int) -> None:
    for i in range(n):
        build = event_builder(
            site="toledo",
            device="toledo-edge-2",
            type="activation",
            reason="converged",
            message=f"event {i}",
            line="toledo/line-2",
            generation=1,
            install=outbox.install,
        )
        outbox.put_event(f"{TOL2}/events", build)


def test_a_reinstalled_device_restarting_seq_at_1_loses_no_events(
    fleet_repo: Path, tmp_path: Path, mosquitto: Mosquitto, key: SigningKey
) -> None:
    address = BrokerAddress.parse(mosquitto.url)
    settings = Settings(fleet_repo, address, key, tmp_path / "state", "file:///x", remote=None)
    rec = Reconciler.open(settings)
    assert rec.tick().error == ""

    before = Outbox(tmp_path / "device-1" / "outbox.db")
    emit(before, 3)
    first = drain(before)
    before.close()
    after = Outbox(tmp_path / "device-2" / "outbox.db")  # reinstalled: storage wiped
    emit(after, 2)
    second = drain(after)
    after.close()
    assert [json.loads(p)["seq"] for _, p, _ in first + second] == [1, 2, 3, 1, 2]

    with Session(address, "linefleet-test-reinstall", subscriptions=[f"{TOL2}/events"]) as s:
        s.connect()
        send(mosquitto, first + second + second[-1:])  # the last one redelivered
        wait_for(
            "five events",
            lambda: len(rec.observations.device("toledo", "toledo-edge-2").events) >= 5,
            5,
            meanwhile=lambda: rec.absorb(s, 0.2),
        )
        rec.absorb(s, 0.3)
    obs = rec.observations.device("toledo", "toledo-edge-2")
    assert [(e.install is not None, e.seq) for e in obs.events] == [
        (True, n) for n in (1, 2, 3, 1, 2)
    ]
    assert rec.observations.rejections["duplicate_event"] == 1  # only the real redelivery
    rec.store.close()
    again = Store(tmp_path / "state").load().device("toledo", "toledo-edge-2")  # persisted
    assert again.install == Event.model_validate_json(second[0][1]).install
    assert again.last_seq == 2 and len(again.seqs) == 2


def test_an_event_seq_beyond_64_bits_is_refused_and_the_reconciler_keeps_its_store(
    fleet_repo: Path, tmp_path: Path, mosquitto: Mosquitto, key: SigningKey
) -> None:
    """A buggy or hostile device once stopped `linefleet reconcile` (exit 3, OverflowError
    from SQLite) with one event whose `seq` did not fit a 64-bit integer."""
    address = BrokerAddress.parse(mosquitto.url)
    settings = Settings(fleet_repo, address, key, tmp_path / "state", "file:///x", remote=None)
    rec = Reconciler.open(settings)
    assert rec.tick().error == ""
    outbox = Outbox(tmp_path / "device" / "outbox.db")
    emit(outbox, 1)
    (good,) = drain(outbox)
    outbox.close()
    huge = {**json.loads(good[1]), "seq": 2**64}
    with Session(address, "linefleet-test-huge-seq", subscriptions=[f"{TOL2}/events"]) as s:
        s.connect()
        send(mosquitto, [(good[0], json.dumps(huge).encode(), False), good])
        wait_for(
            "the good event",
            lambda: len(rec.observations.device("toledo", "toledo-edge-2").events) >= 1,
            5,
            meanwhile=lambda: rec.absorb(s, 0.2),
        )
    assert rec.observations.rejections["malformed"] == 1
    assert "seq" in rec.observations.last_rejection["malformed"]
    rec.store.close()
    again = Store(tmp_path / "state").load().device("toledo", "toledo-edge-2")
    assert again.last_seq == 1


def test_a_report_with_a_lone_surrogate_escape_is_refused_and_the_reconciler_keeps_going(
    fleet_repo: Path, tmp_path: Path, mosquitto: Mosquitto, key: SigningKey
) -> None:
    """`"error": "\\ud800"` is valid JSON that no UTF-8 text can hold: the report was accepted,
    and saving it raised out of `absorb`, so `linefleet reconcile` stopped (exit 3) with the
    other devices' reports of that batch unsaved, and again on every restart (it is retained)."""
    address = BrokerAddress.parse(mosquitto.url)
    settings = Settings(fleet_repo, address, key, tmp_path / "state", "file:///x", remote=None)
    rec = Reconciler.open(settings)
    assert rec.tick().error == ""
    desired = retained(mosquitto, "linefleet/v1/toledo/+/desired")
    tol1 = "linefleet/v1/toledo/toledo-edge-1"
    hostile = ack(desired[f"{TOL2}/desired"]).replace(b'"lines"', b'"error": "\\ud800", "lines"')
    with Session(
        address, "linefleet-test-surrogate", subscriptions=["linefleet/v1/+/+/reported"]
    ) as s:
        s.connect()
        send(
            mosquitto,
            [
                (f"{TOL2}/reported", hostile, True),
                (f"{tol1}/reported", ack(desired[f"{tol1}/desired"]), True),
            ],
        )
        wait_for(
            "the good report",
            lambda: rec.observations.device("toledo", "toledo-edge-1").reported is not None,
            5,
            meanwhile=lambda: rec.absorb(s, 0.2),
        )
    assert rec.observations.rejections["malformed"] == 1
    assert rec.observations.last_rejection["malformed"].endswith(
        "reported: error: a string holds a lone surrogate escape (\\ud800-\\udfff unpaired): "
        "not Unicode text"
    )
    assert rec.observations.device("toledo", "toledo-edge-2").reported is None
    rec.store.close()
    saved = Store(tmp_path / "state").load()
    assert saved.device("toledo", "toledo-edge-1").reported is not None


def test_a_device_with_wiped_storage_refuses_an_old_replayed_document(
    fleet_repo: Path, tmp_path: Path, mosquitto: Mosquitto, key: SigningKey
) -> None:
    """With `--max-age`, documents carry a signed `expires_at`: a broker replaying an old
    (validly signed) document to a device that lost its replay floor is refused `expired`."""
    from edge_puller.agent import Agent
    from reconciler.service.publish import load_revision, publish
    from tests.integration.mqtt.conftest import retained

    address = BrokerAddress.parse(mosquitto.url)
    revision = load_revision(fleet_repo, "HEAD")
    desired = "linefleet/v1/toledo/toledo-edge-1/desired"
    old = publish(revision, address, key, "file:///x", max_age=60, now=time.time() - 600)
    assert old.published == 3
    replay = retained(mosquitto, desired)[desired]  # what a hostile broker keeps to replay
    assert json.loads(replay)["expires_at"]
    now = time.time()  # both publishes below in one expiry window, however slow they are
    fresh = publish(revision, address, key, "file:///x", max_age=60, now=now)
    assert fresh.published == 3  # same content, re-signed: the old bound has passed
    current = retained(mosquitto, desired)[desired]
    assert publish(revision, address, key, "file:///x", max_age=60, now=now).published == 0

    wiped = Agent("toledo", "toledo-edge-1", tmp_path / "edge", {key.key_id: key.public})
    try:
        wiped.offer_desired(replay)
        wiped.tick()
        assert wiped.state.target is None
        events = [json.loads(m[1]) for m in drain(wiped.outbox) if m[0].endswith("/events")]
        assert [(e["type"], e["reason"]) for e in events][:1] == [("refused-document", "expired")]
        wiped.offer_desired(current)
        wiped.tick()
        assert wiped.state.target is not None and wiped.state.generation == 1
    finally:
        wiped.outbox.close()


def test_reports_and_events_must_carry_the_devices_signature(
    fleet_repo: Path, tmp_path: Path, mosquitto: Mosquitto, key: SigningKey
) -> None:
    """A real agent behind a real link signs with its device key; the reconciler (with the
    devices' public keys) accepts that and refuses an unsigned or wrongly signed forgery on
    the same topic, from anyone who can write it (a broker, a stolen account)."""
    from edge_puller.agent import Agent
    from edge_puller.link import Link, sign_payload
    from linefleet.cli import main
    from linefleet_core.signing import load_device_keys

    keys = tmp_path / "device-keys"
    assert main(["keys", "device", "--out", str(keys), "toledo-edge-1", "toledo-edge-2"]) == 0
    address = BrokerAddress.parse(mosquitto.url)
    settings = Settings(
        fleet_repo, address, key, tmp_path / "state", "file:///x", remote=None,
        device_keys=load_device_keys(keys),
    )  # fmt: skip
    rec = Reconciler.open(settings)
    assert rec.tick().error == ""
    tol1 = "linefleet/v1/toledo/toledo-edge-1"
    agent = Agent("toledo", "toledo-edge-1", tmp_path / "edge", {key.key_id: key.public})
    link = Link(
        address, "toledo", "toledo-edge-1", agent.offer_desired, agent.outbox,
        device_key=SigningKey.load(keys / "toledo-edge-1.key"),
    )  # fmt: skip
    subscriptions = [f"{tol1}/reported", f"{tol1}/events"]
    with Session(address, "linefleet-test-signed", subscriptions=subscriptions) as s:
        s.connect()
        link.start()
        try:
            wait_for("the desired state", lambda: agent.state.target, 10, meanwhile=agent.tick)
            agent.emit("activation", "converged", "hello")
            agent.report()
            obs = rec.observations.device("toledo", "toledo-edge-1")
            wait_for(
                "the signed report and event",
                lambda: obs.reported is not None and obs.events,
                10,
                meanwhile=lambda: rec.absorb(s, 0.2),
            )
        finally:
            link.stop()
            agent.outbox.close()
        genuine = obs.reported
        assert genuine is not None and genuine.signature is not None
        assert obs.events[-1].signature is not None

        forged = genuine.model_dump(mode="json", exclude={"signature"})
        forged["error"] = "disk on fire"
        body = json.dumps(forged).encode()
        other = SigningKey.load(keys / "toledo-edge-2.key")
        send(mosquitto, [(f"{tol1}/reported", body, True)])
        send(mosquitto, [(f"{tol1}/reported", sign_payload(other, body), True)])
        wait_for(
            "both forgeries rejected",
            lambda: sum(rec.observations.rejections[r] for r in ("unsigned", "bad_signature")) >= 2,
            15,
            meanwhile=lambda: rec.absorb(s, 0.2),
        )
    assert rec.observations.rejections["unsigned"] == 1
    assert rec.observations.rejections["bad_signature"] == 1
    assert obs.reported == genuine  # the forgeries changed nothing
    rec.store.close()


def test_a_report_with_an_infinite_metric_is_kept_and_the_reconciler_restarts_on_its_store(
    fleet_repo: Path, tmp_path: Path, mosquitto: Mosquitto, key: SigningKey
) -> None:
    """`"latency_p95_ms": 1e999` is a finite JSON number that parses as infinity, and the
    protocol accepts it (status writes it as null, listed in `non_finite`). The store wrote it
    as null, which is no number: the next `linefleet reconcile` and every `status --state-dir`
    stopped with exit 3 while reading the state directory, until the device reported again."""
    address = BrokerAddress.parse(mosquitto.url)
    settings = Settings(fleet_repo, address, key, tmp_path / "state", "file:///x", remote=None)
    rec = Reconciler.open(settings)
    assert rec.tick().error == ""
    desired = retained(mosquitto, "linefleet/v1/toledo/+/desired")
    doc = json.loads(desired[f"{TOL2}/desired"])
    metrics = '{"window_seconds": 60.0, "frames": 100, "latency_p95_ms": 1e999}'
    lines = [{"line": ln["line"], "phase": "serving"} for ln in doc["spec"]["lines"]]
    report = ack(desired[f"{TOL2}/desired"], lines=lines).replace(
        b'"phase": "serving"', b'"phase": "serving", "metrics": ' + metrics.encode()
    )
    with Session(address, "linefleet-test-inf", subscriptions=["linefleet/v1/+/+/reported"]) as s:
        s.connect()
        send(mosquitto, [(f"{TOL2}/reported", report, True)])
        wait_for(
            "the report",
            lambda: rec.observations.device("toledo", "toledo-edge-2").reported is not None,
            5,
            meanwhile=lambda: rec.absorb(s, 0.2),
        )
    assert not rec.observations.rejections
    rec.store.close()
    again = Reconciler.open(settings)  # a restart reads the state directory
    saved = again.observations.device("toledo", "toledo-edge-2").reported
    assert saved is not None and saved.lines[0].metrics is not None
    assert saved.lines[0].metrics.latency_p95_ms == float("inf")
    again.store.close()


def test_a_stored_report_an_older_reconciler_wrote_with_a_null_metric_is_dropped(
    tmp_path: Path,
) -> None:
    """Such a state directory (the `null` above) opens: that report is dropped (the device's
    next one replaces it), the device's other state and every other device are kept."""
    store = Store(tmp_path / "state")
    at = "2026-11-21T23:55:34Z"
    null_metric = (
        '{"protocol": 1, "kind": "ReportedState", "site": "toledo", "device": "toledo-edge-2",'
        f' "at": "{at}", "lines": [{{"line": "toledo/line-2", "phase": "serving", "metrics":'
        ' {"window_seconds": 60.0, "frames": 100, "latency_p95_ms": null}}]}'
    )
    good = null_metric.replace("toledo-edge-2", "toledo-edge-1").replace("null", "4.0")
    for device, text in (("toledo-edge-2", null_metric), ("toledo-edge-1", good)):
        store.db.execute(
            "INSERT INTO device (key, site, device, reported, last_seen, online, last_seq) "
            "VALUES (?, 'toledo', ?, ?, 100.0, 1, 7)",
            (f"toledo/{device}", device, text),
        )
    store.close()
    loaded = Store(tmp_path / "state").load()
    dropped = loaded.device("toledo", "toledo-edge-2")
    assert dropped.reported is None and dropped.last_seq == 7 and dropped.online
    assert loaded.device("toledo", "toledo-edge-1").reported is not None
