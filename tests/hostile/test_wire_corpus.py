"""The hostile wire corpus against the pure entry points: every case refused with its reason.

Device side: `linefleet_core.signing.verify` (the protocol's rules) and
`edge_puller.desired.accept` (what the agent calls). Reconciler side:
`reconciler.service.observed.classify` / `Observations.ingest`. Nothing may raise anything but the
documented refusal, and each refusal must say why.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from edge_puller.desired import accept
from linefleet_core.signing import VerifyError, verify
from reconciler.service.observed import Accepted, Observations, Rejected, Rejection, classify
from tests.hostile import wire_corpus as wc

PINNED = {wc.KEY.key_id: wc.KEY.public}


def _params(cases: list[Any]) -> list[Any]:
    """Cases with an open defect run as strict expected failures: they flip when it is fixed."""
    return [
        pytest.param(c, id=c.name, marks=pytest.mark.xfail(strict=True, reason=c.known_bug))
        if c.known_bug
        else pytest.param(c, id=c.name)
        for c in cases
    ]


def test_the_baseline_document_is_accepted() -> None:
    """Without this the corpus could be refused for a reason that has nothing to do with it."""
    payload = wc.signed(wc.document())
    doc = verify(payload, PINNED, device=wc.DEVICE, held=wc.held())
    assert doc.generation == wc.HELD + 1
    _, target = accept(payload, PINNED, wc.DEVICE, wc.held())
    assert target.document.device == wc.DEVICE


@pytest.mark.parametrize("case", _params(wc.DESIRED_CASES))
def test_hostile_desired_state_is_refused_with_its_reason(case: wc.DesiredCase) -> None:
    held = wc.held() if case.stateful else None
    with pytest.raises(VerifyError) as refused:
        verify(case.payload, PINNED, device=wc.DEVICE, held=held)
    assert refused.value.reason is case.reason, str(refused.value)
    assert str(refused.value).startswith(f"refused desired state ({case.reason.value}): ")
    with pytest.raises(VerifyError) as at_edge:
        accept(case.payload, PINNED, wc.DEVICE, held)
    assert at_edge.value.reason is case.reason


def test_a_replayed_duplicate_is_not_a_refusal() -> None:
    """The same generation and content again (a QoS 1 redelivery) verifies; the agent ignores it."""
    payload = wc.signed(wc.document(wc.HELD))
    assert verify(payload, PINNED, device=wc.DEVICE, held=wc.held()).generation == wc.HELD


def test_no_pinned_key_refuses_everything() -> None:
    with pytest.raises(VerifyError) as refused:
        verify(wc.signed(wc.document()), {}, device=wc.DEVICE)
    assert "pinned: none" in str(refused.value)


def test_the_baseline_device_messages_are_accepted() -> None:
    for topic, body in (
        (wc.REPORTED, wc.reported()),
        (wc.EVENTS, wc.event()),
        (wc.ONLINE, {"protocol": 1, "online": True}),
    ):
        result = classify(topic, json.dumps(body).encode(), wc.KNOWN_DEVICES)
        assert isinstance(result, Accepted), result


@pytest.mark.parametrize("case", _params(wc.DEVICE_CASES))
def test_hostile_device_message_is_counted_and_dropped(case: wc.DeviceCase) -> None:
    result = classify(case.topic, case.payload, wc.KNOWN_DEVICES)
    assert isinstance(result, Rejected), result
    assert result.reason is Rejection(case.rejection), result
    assert result.detail
    obs = Observations()
    obs.ingest(case.topic, case.payload, 0.0, wc.KNOWN_DEVICES)
    assert obs.rejections == {case.rejection: 1}
    assert all(o.reported is None and not o.events for o in obs.devices.values())


def test_redelivered_and_reordered_events_reach_consumers_once() -> None:
    obs = Observations()
    delivered = [1, 2, 2, 3, 1, 5, 4, 5, 6]
    accepted = []
    for seq in delivered:
        result = obs.ingest(wc.EVENTS, json.dumps(wc.event(seq)).encode(), 0.0, wc.KNOWN_DEVICES)
        if isinstance(result, Accepted):
            accepted.append(seq)
    assert accepted == [1, 2, 3, 5, 6]  # 4 came after 5: a gap, never a step back
    assert obs.rejections == {"duplicate_event": 4}


def test_infinite_metrics_from_a_device_are_accepted() -> None:
    """`1e999` parses as inf, which `ge=0` lets through: documents what a device can claim.

    Not a crash (status renders it, gates compare it), but a compromised device can claim any
    finite or infinite latency/drift and so trigger a rollback pull request (docs/security.md).
    """
    body = json.dumps(wc.reported(lines=[{"line": "plant/line-1", "phase": "serving"}]))
    payload = body.replace(
        '"phase": "serving"',
        '"phase": "serving", "metrics": '
        '{"window_seconds": 1.0, "frames": 1, "latency_p95_ms": 1e999}',
    )
    result = classify(wc.REPORTED, payload.encode(), wc.KNOWN_DEVICES)
    assert isinstance(result, Accepted)
