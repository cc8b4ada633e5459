"""Device conditions and health gates (pure): a table of situations and what status says."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from linefleet.commands.status import render_table
from linefleet_core.conditions import ConditionType
from linefleet_core.wire import DesiredState, HealthGatesSpec, LineMetrics
from reconciler.service.compile import compile_fleet
from reconciler.service.fleetstatus import as_json, fleet_status
from reconciler.service.healthgates import violations
from reconciler.service.observed import Observations
from tests.support import minifleet

NOW = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC).timestamp()
GATES = HealthGatesSpec(
    max_error_rate=0.01,
    max_latency_p95_ms=100.0,
    min_shadow_agreement=0.9,
    max_defect_rate_jump=0.05,
    max_drift_score=0.3,
)


def desired() -> DesiredState:
    spec, _ = minifleet.load_docs(minifleet.documents())
    return compile_fleet(spec, "ab" * 20, 4, "file:///srv")["dresden-edge-1"]


def report(doc: DesiredState, age: float = 5.0, **changes: Any) -> bytes:
    applied = {"generation": doc.generation, "content_hash": doc.content_hash}
    at = dt.datetime.fromtimestamp(NOW - age, dt.UTC).isoformat()
    body: dict[str, Any] = {
        "protocol": 1,
        "kind": "ReportedState",
        "site": doc.site,
        "device": doc.device,
        "at": at,
        "desired": applied,
        "applied": applied,
        "lines": [
            {"line": ln.line, "phase": "serving", "serving": ln.serving.ref}
            for ln in doc.spec.lines
        ],
    }
    body.update(changes)
    return json.dumps(body).encode()


def status_of(doc: DesiredState, *messages: tuple[str, bytes]) -> tuple[str, str]:
    obs = Observations()
    for channel, payload in messages:
        topic = f"linefleet/v1/{doc.site}/{doc.device}/{channel}"
        obs.ingest(topic, payload, NOW, live=False)
    key = f"{doc.site}/{doc.device}"
    dev = fleet_status({key: doc}, obs, NOW).devices[0]
    return dev.condition.type.value, dev.condition.reason


def metrics(**values: float) -> dict[str, Any]:
    base: dict[str, Any] = {"window_seconds": 300.0, "frames": 1000, "candidate_frames": 100}
    return {**base, **values}


def test_conditions() -> None:
    doc = desired()
    old = {"generation": 2, "content_hash": "0" * 64}
    failed_line = [{"line": "dresden/line-1", "phase": "failed", "message": "load failed"}]
    rolled = [{"line": "dresden/line-1", "phase": "rolled_back"}]
    canary_bad = [
        {
            "line": "dresden/line-1",
            "phase": "serving",
            "metrics": metrics(candidate_error_rate=0.2, shadow_agreement=0.95),
        }
    ]
    refused = json.dumps(
        {
            "protocol": 1,
            "kind": "Event",
            "site": doc.site,
            "device": doc.device,
            "seq": 1,
            "at": "2026-11-21T11:59:00Z",
            "type": "refused-document",
            "generation": doc.generation,
            "reason": "unknown-key",
        }
    ).encode()
    offline = b'{"protocol": 1, "online": false}'
    table = [
        ((), ("Unknown", "NeverReported")),
        ((("reported", report(doc)),), ("Synced", "Applied")),
        ((("reported", report(doc, applied=old)),), ("Progressing", "Converging")),
        ((("reported", report(doc, applied=None)),), ("Progressing", "Converging")),
        ((("reported", report(doc, age=181.0)),), ("Stale", "HeartbeatMissed")),
        ((("reported", report(doc)), ("online", offline)), ("Stale", "Offline")),
        ((("reported", report(doc, error="disk full")),), ("Failed", "DeviceError")),
        ((("reported", report(doc, lines=failed_line)),), ("Failed", "LineFailed")),
        ((("reported", report(doc, lines=rolled)),), ("Degraded", "RolledBack")),
        ((("reported", report(doc, lines=canary_bad)),), ("Degraded", "HealthGate")),
        ((("reported", report(doc, warning="ROI scaled")),), ("Degraded", "DeviceWarning")),
        (
            (("reported", report(doc, warning="ROI scaled", error="disk full")),),
            ("Failed", "DeviceError"),
        ),
        (
            (("reported", report(doc, warning="ROI scaled", lines=rolled)),),
            ("Degraded", "RolledBack"),
        ),
        (
            (("reported", report(doc, applied=old, desired=old)), ("events", refused)),
            ("Failed", "RefusedDocument"),
        ),
    ]
    for messages, expected in table:
        assert status_of(doc, *messages) == expected, messages


def test_a_device_inspecting_on_a_scaled_roi_stays_synced_with_its_health_degraded() -> None:
    """Frames at another scale than the camera declares: the device scales the ROI and decides
    them, and says so in its report's `warning`. It was Failed (the text came in `error`); it
    runs what git says and inspects, so its sync is Synced and its health Degraded."""
    doc = desired()
    why = "frames cam-1 (dresden/line-1): 960x600, the fleet declares 1920x1200: ROI scaled"
    obs = Observations()
    obs.ingest(f"linefleet/v1/{doc.site}/{doc.device}/reported", report(doc, warning=why), NOW)
    (dev,) = fleet_status({f"{doc.site}/{doc.device}": doc}, obs, NOW).devices
    assert (dev.sync.value, dev.health.value, dev.health.message) == ("Synced", "Degraded", why)
    device = as_json(fleet_status({f"{doc.site}/{doc.device}": doc}, obs, NOW), NOW)["devices"][0]
    assert (device["condition"], device["reason"], device["warning"]) == (
        "Degraded",
        "DeviceWarning",
        why,
    )
    assert device["error"] == ""


def test_a_report_without_a_warning_field_is_read_as_before() -> None:
    """A client written from docs/protocol.md before `warning` existed still reaches Synced."""
    doc = desired()
    body = json.loads(report(doc))
    assert "warning" not in body
    assert status_of(doc, ("reported", json.dumps(body).encode())) == ("Synced", "Applied")


def test_stale_is_never_synced_even_when_applied_matches() -> None:
    doc = desired()
    kind, _ = status_of(doc, ("reported", report(doc, age=3600)))
    assert kind == ConditionType.STALE


def test_json_status_lists_lines_with_desired_and_reported_models() -> None:
    doc = desired()
    obs = Observations()
    obs.ingest(f"linefleet/v1/{doc.site}/{doc.device}/reported", report(doc), NOW, live=False)
    obs.ingest("linefleet/v1/x/y/reported", b"garbage", NOW)
    out = as_json(fleet_status({f"{doc.site}/{doc.device}": doc}, obs, NOW), NOW)
    assert out["counts"]["Synced"] == 1
    assert out["rejected"] == {"malformed": 1}
    line = out["devices"][0]["lines"][0]
    assert (line["desired_serving"], line["reported_serving"]) == ("surface-classifier@2",) * 2
    assert (line["desired_candidate"], line["stage"]) == ("surface-classifier@3", "canary")


def test_a_device_speaks_only_for_the_lines_and_models_it_was_sent() -> None:
    """Rows for another line, or naming a model the line was not sent, are refused and
    counted: no Degraded, no gate, nothing for a rollback to cite."""
    doc = desired()
    bad = metrics(candidate_error_rate=0.9, error_rate=0.9, frames=5000, candidate_frames=5000)
    lines = [
        {
            "line": "dresden/line-1",
            "phase": "serving",
            "serving": "surface-classifier@9",
            "metrics": bad,
        },
        {"line": "dresden/line-2", "phase": "serving", "serving": "surface-classifier@1"},
        {"line": "toledo/line-1", "phase": "rolled_back", "serving": "surface-classifier@2"},
    ]
    obs = Observations()
    obs.ingest(f"linefleet/v1/{doc.site}/{doc.device}/reported", report(doc, lines=lines), NOW)
    status = fleet_status({f"{doc.site}/{doc.device}": doc}, obs, NOW)
    (dev,) = status.devices
    assert [(row.line, row.reported is None) for row in dev.lines] == [
        ("dresden/line-1", True),
        ("dresden/line-2", False),
    ]
    assert dev.condition.type is ConditionType.SYNCED
    assert status.rejections == {"foreign_line": 1, "foreign_model": 1}
    assert "surface-classifier@9 not sent to this line" in status.last_rejection["foreign_model"]
    assert as_json(status, NOW)["rejected"] == {"foreign_line": 1, "foreign_model": 1}


@pytest.mark.parametrize(
    ("stage", "values", "broken"),
    [
        (None, {"error_rate": 0.02}, ["max_error_rate"]),
        (
            None,
            {"latency_p95_ms": 150.0, "drift_score": 0.5},
            ["max_drift_score", "max_latency_p95_ms"],
        ),
        (None, {"error_rate": 0.5, "frames": 10}, []),  # too few frames to judge
        ("shadow", {"candidate_error_rate": 0.5, "shadow_agreement": 0.95}, []),
        ("shadow", {"shadow_agreement": 0.8}, ["min_shadow_agreement"]),
        ("canary", {"candidate_error_rate": 0.05}, ["max_error_rate"]),
        ("canary", {"candidate_defect_rate": 0.2, "defect_rate": 0.05}, ["max_defect_rate_jump"]),
        ("canary", {"candidate_error_rate": 0.5, "candidate_frames": 3}, []),
        ("canary", {"error_rate": 0.5}, []),  # the incumbent's errors do not fail the canary
    ],
)
def test_health_gates(stage: str | None, values: dict[str, float], broken: list[str]) -> None:
    found = violations(LineMetrics.model_validate(metrics(**values)), GATES, stage=stage)
    assert sorted(v.gate for v in found) == sorted(broken)


def test_no_shadow_comparisons_is_no_agreement_and_breaks_no_gate() -> None:
    from linefleet.commands.status import _candidate
    from linefleet_core.wire import LineStatus
    from reconciler.service.fleetstatus import LineRow

    quiet = LineMetrics.model_validate(metrics(candidate_frames=0))  # no shadow_agreement
    assert quiet.shadow_agreement is None
    assert violations(quiet, GATES, stage="shadow") == []
    reported = LineStatus(line="dresden/line-1", phase="serving", metrics=quiet)
    row = LineRow(
        "dresden/line-1", "surface-classifier@2", "surface-classifier@3", "shadow", reported
    )
    assert _candidate(row) == "surface-classifier@3 shadow agree=-"
    agreed = LineMetrics.model_validate(metrics(shadow_agreement=0.97))
    measured = reported.model_copy(update={"metrics": agreed})
    assert "agree=0.97" in _candidate(LineRow("dresden/line-1", "m@2", "m@3", "shadow", measured))


def test_without_the_repository_a_device_no_document_names_is_not_said_to_be_in_the_fleet() -> None:
    """A report from a device at a site that has no such device (its agent given the wrong
    site): without `--repo`, status cannot know whether it is in the fleet. It used to say
    `in_fleet: true`; it says null, and that no desired state was published for it. With the
    repository's device list it is not in the fleet."""
    doc = desired()
    obs = Observations()
    stray = report(doc, site="toledo")
    obs.ingest(f"linefleet/v1/toledo/{doc.device}/reported", stray, NOW, live=False)
    key = f"{doc.site}/{doc.device}"
    status = fleet_status({key: doc}, obs, NOW)
    stranger = next(d for d in status.devices if d.site == "toledo")
    assert stranger.in_fleet is None
    assert stranger.condition.reason == "NoDesiredState"
    assert stranger.condition.message == "no desired state published for this device"
    assert stranger.sync.message == "no desired state published for this device"
    doc_json = as_json(status, NOW)["devices"]
    assert [(d["site"], d["in_fleet"]) for d in doc_json] == [("dresden", True), ("toledo", None)]
    table = render_table(status, NOW)
    assert f"toledo/{doc.device}: Progressing (NoDesiredState): no desired state published" in table
    assert "(not in fleet)" not in table
    with_repo = fleet_status({key: doc}, obs, NOW, fleet={key})
    assert f"{doc.device} (not in fleet)" in render_table(with_repo, NOW)
    assert [(d.site, d.in_fleet) for d in with_repo.devices] == [
        ("dresden", True),
        ("toledo", False),
    ]


def test_a_device_whose_reports_are_all_refused_says_so_on_its_own_row() -> None:
    """A device that speaks, but every report of which is refused (a field the protocol does
    not take), was shown as 'no report from the device yet': only the fleet-wide 'last
    malformed' named its topic. Its own condition says its last message was refused, with the
    topic, the reason and the field; one refusal is kept per device, the newest."""
    doc = desired()
    obs = Observations()
    topic = f"linefleet/v1/{doc.site}/{doc.device}/reported"
    obs.ingest(topic, b"not json", NOW - 20, live=False)
    obs.ingest(topic, report(doc, lines=[{"line": "dresden/line-1", "phase": "x"}]), NOW - 10)
    key = f"{doc.site}/{doc.device}"
    status = fleet_status({key: doc}, obs, NOW)
    (dev,) = status.devices
    assert (dev.condition.type.value, dev.condition.reason) == ("Unknown", "ReportRefused")
    assert dev.condition.message.startswith(
        f"no report accepted; the last message on its topics was refused: {topic}: malformed: lines.0.phase: "
    )
    assert (dev.sync.reason, dev.health.reason) == ("ReportRefused", "ReportRefused")
    refused = as_json(status, NOW)["devices"][0]["last_refused"]
    assert refused["topic"] == topic and refused["reason"] == "malformed"
    assert refused["detail"].startswith("lines.0.phase: ")
    assert refused["at"] == dt.datetime.fromtimestamp(NOW - 10, dt.UTC).isoformat()
    assert f"{key}: Unknown (ReportRefused): no report accepted; the last message" in (
        render_table(status, NOW)
    )
    # a report accepted later: the condition is the report's; the refusal stays a note
    obs.ingest(topic, report(doc), NOW)
    (dev,) = fleet_status({key: doc}, obs, NOW).devices
    assert dev.condition.type is ConditionType.SYNCED
    assert as_json(fleet_status({key: doc}, obs, NOW), NOW)["devices"][0]["last_refused"]


def test_a_refusal_belongs_to_the_device_its_topic_names_and_no_other() -> None:
    """Garbage on one device's topic, even naming another device in its payload, is that
    topic's device's refusal: the other device keeps its state. A topic that names no device
    (or a device outside the fleet) stays a fleet-wide count and adds no row."""
    doc = desired()
    key = f"{doc.site}/{doc.device}"
    obs = Observations()
    obs.ingest(f"linefleet/v1/{doc.site}/{doc.device}/reported", report(doc), NOW)
    mine = f"linefleet/v1/{doc.site}/other-edge/reported"
    obs.ingest(mine, report(doc), NOW)  # a payload for dresden-edge-1 on other-edge's topic
    obs.ingest("linefleet/v1/dresden/../reported", b"x", NOW)
    obs.ingest("linefleet/v1/dresden/ghost-1/reported", b"x", NOW, known={(doc.site, "x")})
    status = fleet_status({key: doc}, obs, NOW)
    rows = {d.device: d for d in status.devices}
    assert sorted(rows) == [doc.device, "other-edge"]
    assert rows[doc.device].condition.type is ConditionType.SYNCED
    assert obs.devices[key].refused is None
    other = rows["other-edge"].condition
    assert (other.reason, other.message) == (
        "ReportRefused",
        f"no report accepted; the last message on its topics was refused: {mine}: topic_mismatch: "
        f"payload is for {key}, topic for {doc.site}/other-edge",
    )
    assert status.rejections == {"topic_mismatch": 1, "foreign_topic": 1, "unknown_device": 1}


def test_a_stale_device_whose_messages_since_were_refused_says_so() -> None:
    doc = desired()
    key = f"{doc.site}/{doc.device}"
    topic = f"linefleet/v1/{doc.site}/{doc.device}/reported"
    obs = Observations()
    obs.ingest(topic, report(doc, age=3600), NOW - 3600)
    obs.ingest(topic, b'{"protocol": 2}', NOW - 60)
    (dev,) = fleet_status({key: doc}, obs, NOW).devices
    assert dev.condition.reason == "HeartbeatMissed"
    assert dev.condition.message.endswith(
        f"; messages on its topics since were refused, the last: {topic}: unknown_protocol: protocol 2 is not 1"
    )
