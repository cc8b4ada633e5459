"""`linefleet status` against a real broker holding desired, reported and online state."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from linefleet.cli import main
from linefleet_core.mqtturl import BrokerAddress
from linefleet_core.signing import SigningKey
from reconciler.service.publish import load_revision, publish
from tests.integration.mqtt.conftest import ack, retained, send
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.integration
T = "linefleet/v1"


def test_status_shows_each_condition_and_counts_bad_messages(
    fleet_repo: Path,
    mosquitto: Mosquitto,
    key: SigningKey,
    capsys: pytest.CaptureFixture[str],
) -> None:
    publish(load_revision(fleet_repo, "HEAD"), BrokerAddress.parse(mosquitto.url), key, "file:///x")
    desired = retained(mosquitto, f"{T}/+/+/desired")
    tol1 = desired[f"{T}/toledo/toledo-edge-1/desired"]
    tol2 = desired[f"{T}/toledo/toledo-edge-2/desired"]
    send(
        mosquitto,
        [
            (f"{T}/toledo/toledo-edge-1/reported", ack(tol1), True),  # Synced
            (f"{T}/toledo/toledo-edge-1/online", b'{"protocol":1,"online":true}', True),
            (f"{T}/toledo/toledo-edge-2/reported", ack(tol2, at=time.time() - 3600), True),
            (f"{T}/toledo/ghost-9/reported", ack(tol2), True),  # not in the fleet
            (f"{T}/dresden/dresden-edge-1/online", b"not json", True),
            (f"{T}/dresden/dresden-edge-1/reported", b'{"protocol": 7}', True),
        ],
    )
    argv = ["status", "--broker", mosquitto.url, "--repo", str(fleet_repo), "--quiet", "0.3"]
    assert main([*argv, "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    conditions = {d["device"]: d["condition"] for d in out["devices"]}
    assert conditions == {
        "toledo-edge-1": "Synced",
        "toledo-edge-2": "Stale",
        "dresden-edge-1": "Unknown",
    }
    assert out["rejected"] == {"unknown_device": 1, "malformed": 1, "unknown_protocol": 1}
    dresden = next(d for d in out["devices"] if d["device"] == "dresden-edge-1")
    assert (dresden["reason"], dresden["message"]) == (
        "ReportRefused",
        "no report accepted; the last message on its topics was refused: "
        f"{T}/dresden/dresden-edge-1/reported: unknown_protocol: protocol 7 is not 1",
    )
    edge1 = next(d for d in out["devices"] if d["device"] == "toledo-edge-1")
    line = edge1["lines"][0]
    assert line["desired_candidate"] == "surface-classifier@3" and line["stage"] == "shadow"
    # publish recorded who approved the commit: here a direct commit, so its committer
    assert edge1["desired"]["approval"] == {
        "by": "Fleet Tester <fleet-tester@example.com>",
        "via": "commit",
        "commit": edge1["desired"]["commit"],
        "pull": None,
    }

    assert main(argv) == 0
    table = capsys.readouterr().out
    assert re.search(
        r"toledo-edge-1 +toledo/line-1 +Synced +Healthy +g1 +g1 +surface-classifier@2 ", table
    )
    assert re.search(r"\bAPPROVED BY\b", table.splitlines()[0])
    assert re.search(r"toledo/line-1 +Synced .* +Fleet Tester +\d+s ago", table)
    assert "toledo/toledo-edge-2: Stale (HeartbeatMissed): last seen 60m ago" in table
    assert "3 device(s): 1 Synced, 1 Stale, 1 Unknown" in table
    assert "rejected messages: 1 malformed, 1 unknown_device, 1 unknown_protocol" in table


def test_status_with_an_unreachable_broker_exits_4(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    nobody = Mosquitto(tmp_path / "x")
    assert main(["status", "--broker", nobody.url]) == 4
    assert "unreachable" in capsys.readouterr().err


def test_status_reads_what_the_reconciler_recorded(
    fleet_repo: Path,
    mosquitto: Mosquitto,
    key: SigningKey,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from collections import Counter

    from reconciler.service.observed import Observations
    from reconciler.service.store import Store

    publish(load_revision(fleet_repo, "HEAD"), BrokerAddress.parse(mosquitto.url), key, "file:///x")
    desired = retained(mosquitto, f"{T}/+/+/desired")
    tol2 = json.loads(desired[f"{T}/toledo/toledo-edge-2/desired"])
    old = {"generation": 0, "content_hash": "0" * 64}
    refused = {
        "protocol": 1,
        "kind": "Event",
        "site": "toledo",
        "device": "toledo-edge-2",
        "seq": 4,
        "at": "2026-11-21T10:00:00Z",
        "type": "refused-document",
        "generation": tol2["generation"],
        "reason": "unknown-key",
    }
    obs = Observations()
    now = time.time()
    obs.ingest(f"{T}/toledo/toledo-edge-2/events", json.dumps(refused).encode(), now)
    report = ack(json.dumps(tol2).encode(), applied=old, desired=old)
    obs.ingest(f"{T}/toledo/toledo-edge-2/reported", report, now)
    obs.ingest(f"{T}/toledo/toledo-edge-2/events", b"[]", now)
    store = Store(tmp_path / "state")
    store.save(obs, {"toledo/toledo-edge-2"}, Counter(obs.rejections))
    store.put("last_applied_commit", "a" * 40)
    store.put("last_attempted_commit", "b" * 40)
    store.put("last_error", "broker mqtt://x:1 unreachable")
    store.close()

    argv = ["status", "--broker", mosquitto.url, "--state-dir", str(tmp_path / "state")]
    assert main([*argv, "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    dev = next(d for d in out["devices"] if d["device"] == "toledo-edge-2")
    assert (dev["condition"], dev["reason"]) == ("Failed", "RefusedDocument")
    assert "unknown-key" in dev["message"]
    assert out["rejected"] == {"malformed": 1}
    assert out["reconciler"]["last_applied_commit"] == "a" * 40
    assert out["reconciler"]["stalled_commit"] is None
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "reconciler: applied aaaaaaaaaaaa, attempted bbbbbbbbbbbb" in table
    assert "last error: broker mqtt://x:1 unreachable" in table
    assert main(["status", "--broker", mosquitto.url, "--state-dir", str(tmp_path / "nope")]) == 2


def test_status_json_is_strict_and_device_text_is_escaped(
    fleet_repo: Path,
    mosquitto: Mosquitto,
    key: SigningKey,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 12: `latency_p95_ms: 1e999` made the JSON say `Infinity`; an `error` holding
    terminal control sequences was printed raw by the table."""
    publish(load_revision(fleet_repo, "HEAD"), BrokerAddress.parse(mosquitto.url), key, "file:///x")
    desired = retained(mosquitto, f"{T}/+/+/desired")
    tol1 = json.loads(desired[f"{T}/toledo/toledo-edge-1/desired"])
    lines = [
        {
            "line": ln["line"],
            "phase": "serving",
            "serving": ln["serving"]["ref"],
            "metrics": {"window_seconds": 60, "frames": 0, "latency_p95_ms": 0.0},
        }
        for ln in tol1["spec"]["lines"]
    ]
    lines[0]["metrics"] = {"window_seconds": 60, "frames": 100, "latency_p95_ms": "INF"}
    report = ack(json.dumps(tol1).encode(), lines=lines, error="boom\x1b[2J\x1b]0;pwned\x07")
    report = report.replace(b'"INF"', b"1e999")
    send(mosquitto, [(f"{T}/toledo/toledo-edge-1/reported", report, True)])
    argv = ["status", "--broker", mosquitto.url, "--quiet", "0.3"]

    assert main([*argv, "--format", "json"]) == 0
    text = capsys.readouterr().out
    assert "Infinity" not in text and "NaN" not in text
    out = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    dev = next(d for d in out["devices"] if d["device"] == "toledo-edge-1")
    first, second = dev["lines"][0]["metrics"], dev["lines"][1]["metrics"]
    assert first["latency_p95_ms"] is None
    assert second["frames"] == 0 and second["latency_p95_ms"] is None  # no frames: not 0 ms
    index = next(i for i, d in enumerate(out["devices"]) if d["device"] == "toledo-edge-1")
    assert out["non_finite"] == [f"devices[{index}].lines[0].metrics.latency_p95_ms"]
    assert dev["health"]["status"] == "Failed" and dev["sync"]["status"] == "Synced"

    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "\x1b" not in table and "\x07" not in table
    assert "boom\\x1b[2J\\x1b]0;pwned\\x07" in table


def test_status_with_the_repo_shows_a_device_out_of_sync_when_git_is_ahead(
    fleet_repo: Path,
    mosquitto: Mosquitto,
    key: SigningKey,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 12: a committed but unpublished change still showed the device Synced."""
    from tests.support import minifleet

    publish(load_revision(fleet_repo, "HEAD"), BrokerAddress.parse(mosquitto.url), key, "file:///x")
    desired = retained(mosquitto, f"{T}/+/+/desired")
    send(
        mosquitto,
        [
            (f"{T}/toledo/{dev}/reported", ack(desired[f"{T}/toledo/{dev}/desired"]), True)
            for dev in ("toledo-edge-1", "toledo-edge-2")
        ],
    )
    argv = ["status", "--broker", mosquitto.url, "--repo", str(fleet_repo), "--quiet", "0.3"]
    assert main([*argv, "--format", "json"]) == 0
    before = {
        d["device"]: d["sync"]["status"] for d in json.loads(capsys.readouterr().out)["devices"]
    }
    assert before["toledo-edge-1"] == before["toledo-edge-2"] == "Synced"
    # the YAML it parsed is kept by blob id; the edit below is parsed afresh, not read back
    assert (fleet_repo / ".git" / "linefleet" / "parsed-yaml" / "documents.marshal").is_file()

    minifleet.edit_rollout(fleet_repo, "toledo/line-1", candidate=None)
    head = minifleet.commit_all(fleet_repo, "abort the candidate of toledo/line-1")
    assert main([*argv, "--format", "json"]) == 0
    after = {d["device"]: d for d in json.loads(capsys.readouterr().out)["devices"]}
    edge1 = after["toledo-edge-1"]
    assert edge1["sync"]["status"] == "OutOfSync"
    assert f"missing commit {head[:12]}" in edge1["sync"]["message"]
    assert edge1["condition"] != "Synced" and edge1["health"]["status"] == "Healthy"
    assert after["toledo-edge-2"]["sync"]["status"] == "Synced"  # line-2 did not change

    assert main(argv) == 0
    table = capsys.readouterr().out
    assert re.search(r"toledo-edge-1 +toledo/line-1 +OutOfSync +Healthy ", table)


def test_a_fleet_above_the_summary_size_is_summarised_and_all_lists_every_device(
    fleet_repo: Path,
    mosquitto: Mosquitto,
    key: SigningKey,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Above `SUMMARY_ABOVE` devices the table counts per site and condition and lists only
    the devices not Synced; `--all` lists every one; JSON always lists every device."""
    from linefleet.commands import status as cmd

    publish(load_revision(fleet_repo, "HEAD"), BrokerAddress.parse(mosquitto.url), key, "file:///x")
    desired = retained(mosquitto, f"{T}/+/+/desired")
    tol1 = desired[f"{T}/toledo/toledo-edge-1/desired"]
    send(mosquitto, [(f"{T}/toledo/toledo-edge-1/reported", ack(tol1), True)])
    monkeypatch.setattr(cmd, "SUMMARY_ABOVE", 2)
    argv = ["status", "--broker", mosquitto.url, "--quiet", "0.3"]

    assert main(argv) == 0
    summary = capsys.readouterr().out
    assert re.search(r"^SITE +DEVICES +SYNCED +PROGRESSING +DEGRADED +FAILED +STALE +UNKNOWN$",
                     summary, re.MULTILINE)  # fmt: skip
    assert re.search(r"^toledo +2 +1 +0 +0 +0 +0 +1$", summary, re.MULTILINE)
    assert re.search(r"^all sites +3 +1 +0 +0 +0 +0 +2$", summary, re.MULTILINE)
    assert "2 of 3 device(s) not Synced or not in the fleet (every device: --all):" in summary
    assert "toledo-edge-2" in summary and "dresden-edge-1" in summary
    assert "toledo-edge-1" not in summary  # Synced: counted, not listed

    assert main([*argv, "--all"]) == 0
    every = capsys.readouterr().out
    assert re.search(r"toledo-edge-1 +toledo/line-1 +Synced +Healthy ", every)
    assert "DEVICES" not in every and "3 device(s): 1 Synced, 2 Unknown" in every

    assert main([*argv, "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["devices"]) == 3
