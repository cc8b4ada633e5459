"""Rollback planning (pure) and the round-trip edit of a line file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from linefleet_core.spec import DirectorySource, load
from reconciler.service import rollback
from reconciler.service.compile import compile_fleet
from reconciler.service.fleetstatus import fleet_status
from reconciler.service.observed import Observations
from reconciler.service.rollback import Kind
from tests.support import minifleet

NOW = 1_800_000_000.0


def reported(device: str, site: str, lines: list[dict[str, Any]]) -> bytes:
    return json.dumps(
        {
            "protocol": 1,
            "kind": "ReportedState",
            "site": site,
            "device": device,
            "at": "2027-01-15T08:00:00Z",
            "lines": lines,
        }
    ).encode()


def canary_metrics(error: float) -> dict[str, Any]:
    return {
        "window_seconds": 300.0,
        "frames": 1000,
        "candidate_frames": 100,
        "candidate_error_rate": error,
        "shadow_agreement": 0.95,
    }


def plan_for(docs: dict[str, Any], *reports: tuple[str, str, list[dict[str, Any]]]) -> list[Any]:
    spec, _ = minifleet.load_docs(docs)
    desired = {
        f"{d.site}/{d.device}": d for d in compile_fleet(spec, "a" * 40, 1, "file:///x").values()
    }
    obs = Observations()
    for device, site, lines in reports:
        obs.ingest(f"linefleet/v1/{site}/{device}/reported", reported(device, site, lines), NOW)
    return rollback.plan_rollbacks(spec, fleet_status(desired, obs, NOW))


def test_a_failing_canary_is_dropped_and_a_healthy_one_is_left() -> None:
    docs = minifleet.documents()
    bad = [{"line": "dresden/line-1", "phase": "serving", "metrics": canary_metrics(0.2)}]
    good = [{"line": "dresden/line-1", "phase": "serving", "metrics": canary_metrics(0.0)}]
    assert plan_for(docs, ("dresden-edge-1", "dresden", good)) == []
    [action] = plan_for(docs, ("dresden-edge-1", "dresden", bad))
    assert (action.line, action.kind, action.model, action.target) == (
        "dresden/line-1",
        Kind.DROP_CANDIDATE,
        "surface-classifier@3",
        "surface-classifier@2",
    )
    assert action.evidence == ("dresden-edge-1: max_error_rate: 0.2 > 0.01",)
    assert action.branch == "linefleet/rollback/dresden-line-1"


def test_a_device_side_rollback_of_a_promotion_restores_previous() -> None:
    docs = minifleet.documents()
    rollout = docs[minifleet.line_rel("toledo/line-1")]["rollout"]
    rollout.pop("candidate")
    rolled = [{"line": "toledo/line-1", "phase": "rolled_back", "serving": "surface-classifier@1"}]
    [action] = plan_for(docs, ("toledo-edge-1", "toledo", rolled))
    assert (action.kind, action.model, action.target) == (
        Kind.RESTORE_PREVIOUS,
        "surface-classifier@2",
        "surface-classifier@1",
    )


def test_shadow_lines_without_previous_are_not_touched() -> None:
    docs = minifleet.documents()
    low = dict(canary_metrics(0.0), shadow_agreement=0.5)
    lines = [{"line": "toledo/line-2", "phase": "serving", "metrics": low}]
    assert plan_for(docs, ("toledo-edge-2", "toledo", lines)) == []  # shadow: nothing to revert


def test_apply_edits_only_the_rollout_and_keeps_the_file_style(tmp_path: Path) -> None:
    minifleet.write_minifleet(tmp_path)
    path = minifleet.line_file(tmp_path, "dresden/line-1")
    original = "# owned by dresden quality\n" + path.read_text()
    path.write_text(original)
    action = rollback.Rollback(
        "dresden/line-1", Kind.DROP_CANDIDATE, "surface-classifier@3", "x", ()
    )
    rollback.apply(tmp_path, action)
    edited = path.read_text()
    assert edited.startswith("# owned by dresden quality\n")
    assert "candidate" not in edited and "canary_fraction" not in edited
    removed = [ln for ln in original.splitlines() if ln not in edited.splitlines()]
    assert all(
        any(k in ln for k in ("candidate", "model:", "stage:", "canary_fraction")) for ln in removed
    ), removed
    spec, findings = load(DirectorySource(tmp_path))
    assert findings == []
    assert spec.lines["dresden/line-1"].rollout.candidate is None


def test_a_rollback_by_hand_is_a_divergence_and_git_is_asked_to_follow() -> None:
    docs = minifleet.documents()  # toledo/line-1 serves @2 with @1 as previous, @3 in shadow
    by_hand = [{"line": "toledo/line-1", "phase": "rolled_back", "serving": "surface-classifier@1"}]
    [action] = plan_for(docs, ("toledo-edge-1", "toledo", by_hand))
    assert (action.line, action.kind, action.model, action.target) == (
        "toledo/line-1",
        Kind.RESTORE_PREVIOUS,
        "surface-classifier@2",
        "surface-classifier@1",
    )
    assert action.evidence == ("toledo-edge-1: rolled back by hand to surface-classifier@1",)
    spec, _ = minifleet.load_docs(docs)
    desired = {
        f"{d.site}/{d.device}": d for d in compile_fleet(spec, "a" * 40, 1, "file:///x").values()
    }
    obs = Observations()
    topic = "linefleet/v1/toledo/toledo-edge-1/reported"
    obs.ingest(topic, reported("toledo-edge-1", "toledo", by_hand), NOW)
    [device] = [d for d in fleet_status(desired, obs, NOW).devices if d.device == "toledo-edge-1"]
    assert device.condition.reason == "RolledBackByHand"
    assert (
        "toledo/line-1 serves surface-classifier@1, git says surface-classifier@2"
        in device.condition.message
    )
