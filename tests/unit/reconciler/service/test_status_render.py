"""`linefleet status` output at fleet scale (pure): the summary table above `SUMMARY_ABOVE`
devices, `--all`, and the streamed strict JSON."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from linefleet.commands import status as cmd
from linefleet_core.wire import DesiredState
from reconciler.service.compile import compile_fleet
from reconciler.service.fleetstatus import FleetStatus, as_json, fleet_status, json_chunks
from reconciler.service.observed import Observations
from tests.support import minifleet
from tests.unit.reconciler.service.test_fleetstatus import NOW, report

PER_DEVICE = 4  # copies of each device of the mini fleet (3 devices, 2 sites)


def big_fleet(infinite: bool = False) -> tuple[FleetStatus, dict[str, str]]:
    """Every copy Synced but one Stale, one Failed, one never heard from, and one device the
    fleet repository does not know (Synced): returns the status and those devices' keys.
    `infinite`: the first device reports a p95 latency of `1e999` (infinity to the parser)."""
    spec, _ = minifleet.load_docs(minifleet.documents())
    docs: dict[str, DesiredState] = {}
    for base in compile_fleet(spec, "ab" * 20, 4, "file:///srv").values():
        for n in range(PER_DEVICE):
            doc = base.model_copy(update={"device": f"{base.device}-{n}"})
            docs[f"{doc.site}/{doc.device}"] = doc
    keys = sorted(docs)
    odd = {"stale": keys[1], "failed": keys[2], "silent": keys[3], "stranger": keys[-1]}
    obs = Observations()
    for key, doc in docs.items():
        if key == odd["silent"]:
            continue
        changes: dict[str, Any] = {"error": "camera gone"} if key == odd["failed"] else {}
        if infinite and key == keys[0]:
            metrics = {"window_seconds": 60.0, "frames": 100, "latency_p95_ms": "INF"}
            changes["lines"] = [
                {"line": ln.line, "phase": "serving", "serving": ln.serving.ref, "metrics": metrics}
                for ln in doc.spec.lines
            ]
        payload = report(doc, age=3600.0 if key == odd["stale"] else 5.0, **changes)
        payload = payload.replace(b'"INF"', b"1e999")
        obs.ingest(f"linefleet/v1/{key}/reported", payload, NOW, live=False)
    fleet = set(docs) - {odd["stranger"]}
    return fleet_status(docs, obs, NOW, fleet), odd


def device_rows(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if re.match(r"\S+ +\S+-edge-\d+-\d+ ", ln)]


def test_the_summary_counts_per_site_and_lists_only_devices_that_need_a_look() -> None:
    status, odd = big_fleet()
    text = cmd.render_table(status, NOW, every=False)
    counts = {
        ln.split()[0]: [int(v) for v in ln.split()[1:]]
        for ln in text.splitlines()
        if re.match(r"(toledo|dresden) +\d", ln)
    }
    # DEVICES, SYNCED, PROGRESSING, DEGRADED, FAILED, STALE, UNKNOWN
    per_site: dict[str, list[int]] = {}
    for dev in status.devices:
        row = per_site.setdefault(dev.site, [0] * 7)
        row[0] += 1
        row[1 + cmd.FLEET_CONDITIONS.index(dev.condition.type.value)] += 1
    assert counts == per_site
    assert re.search(r"^all sites +12 +9 +0 +0 +1 +1 +1$", text, re.MULTILINE), text
    listed = {tuple(ln.split()[:2]) for ln in device_rows(text)}
    wanted = {tuple(k.split("/")) for k in (odd["stale"], odd["failed"], odd["silent"])}
    site, device = odd["stranger"].split("/")
    assert listed == wanted | {(site, device)}
    assert f"{device} (not in fleet)" in text
    assert "4 of 12 device(s) not Synced or not in the fleet (every device: --all):" in text
    assert f"{odd['stale']}: Stale (HeartbeatMissed)" in text  # never Synced, never hidden
    assert text.rstrip().endswith("12 device(s): 9 Synced, 1 Failed, 1 Stale, 1 Unknown")


def test_all_lists_every_device_and_the_size_decides_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    status, _ = big_fleet()
    full = cmd.render_table(status, NOW, every=True)
    assert len(device_rows(full)) == sum(max(1, len(d.lines)) for d in status.devices)
    assert {tuple(ln.split()[:2]) for ln in device_rows(full)} == {
        (d.site, d.device) for d in status.devices
    }
    assert "SYNCED" not in full.splitlines()[0]
    assert cmd.render_table(status, NOW) == full  # 12 devices: at most SUMMARY_ABOVE
    monkeypatch.setattr(cmd, "SUMMARY_ABOVE", 11)
    assert cmd.render_table(status, NOW) == cmd.render_table(status, NOW, every=False)
    assert cmd.render_table(status, NOW, every=True) == full


def test_every_synced_fleet_summary_says_so() -> None:
    status, _ = big_fleet()
    status.devices = [d for d in status.devices if not cmd.needs_look(d)]
    text = cmd.render_table(status, NOW, every=False)
    assert "0 of 8 device(s) not Synced or not in the fleet (every device: --all)\n" in text
    assert device_rows(text) == []


def test_json_is_streamed_one_device_a_line_strict_and_complete() -> None:
    status, _ = big_fleet(infinite=True)
    text = "".join(json_chunks(status, NOW, {"field_escapes": {"x": {"rate": 0.5}}}))
    doc = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert list(doc) == [
        "format_version",
        "counts",
        "rejected",
        "last_rejected",
        "reconciler",
        "devices",
        "non_finite",
        "field_escapes",
    ]
    assert len(doc["devices"]) == 12
    per_line = [ln for ln in text.splitlines() if ln.startswith('    {"site": ')]
    assert [json.loads(ln.rstrip(","))["device"] for ln in per_line] == [
        d.device for d in status.devices
    ]
    assert doc["non_finite"] == [
        f"devices[0].lines[{n}].metrics.latency_p95_ms"
        for n in range(len(doc["devices"][0]["lines"]))
    ]
    assert doc["devices"][0]["lines"][0]["metrics"]["latency_p95_ms"] is None
    assert as_json(status, NOW) == {k: v for k, v in doc.items() if k != "field_escapes"}


def test_json_of_an_empty_fleet() -> None:
    empty = FleetStatus([])
    doc = json.loads("".join(json_chunks(empty, NOW)))
    assert doc["devices"] == [] and doc["non_finite"] == [] and doc["counts"]["Synced"] == 0
