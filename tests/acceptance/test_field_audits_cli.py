"""The field audit loop as a user runs it: the edge's audit samples (LFF1 frames with reason
`sample`) are ingested, wait as label tasks, get labelled, and give each line a field escape
rate with its 95% interval, shown by `labels escapes`, `linefleet status --labels` (past the
policy's max_field_escape_rate: Degraded) and the report."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Literal

import cv2
import pytest

from factory_sim.profiles import draw_profile
from factory_sim.render import frame_rng, render_frame
from linefleet.cli import main
from linefleet_core.spec import DirectorySource, load
from linefleet_core.wire import FrameMeta, encode_frame
from tests.support import minifleet
from tests.support.mosquitto import Mosquitto, mosquitto

__all__ = ["mosquitto"]

LINE = "toledo/line-1"
AT = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)


def spooled(
    folder: Path,
    n: int,
    reason: Literal["sample", "defect"],
    cls: str = "ok",
    claims: tuple[str, str, str] = ("toledo-edge-1", LINE, "cam-1"),
) -> None:
    """`n` frames as the edge uploads them (`LFF1` envelope), the model having said ok;
    `claims`: the device, line and camera the envelope names."""
    device, line, camera = claims
    profile = draw_profile("toledo", "line-1", seed=1)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        image = render_frame(profile, cls, frame_rng(5, profile, i + 100 * len(reason)), 64)
        jpeg = bytes(cv2.imencode(".jpg", image)[1])
        meta = FrameMeta(
            protocol=1, kind="Frame", site=line.partition("/")[0], device=device, line=line,
            camera=camera, frame_id=f"{device}-{reason}-{i}", captured_at=AT + dt.timedelta(seconds=i),
            reason=reason, model="surface-classifier@2", predicted="ok" if reason == "sample" else cls,
            confidence=0.96, sha256=hashlib.sha256(jpeg).hexdigest(), size=len(jpeg),
        )  # fmt: skip
        name = f"{reason}-{i:03d}.lff" if claims[0] == "toledo-edge-1" else f"{device}-{i}.lff"
        (folder / name).write_bytes(encode_frame(meta, jpeg))


def test_audit_samples_become_tasks_labels_and_a_field_escape_estimate(
    tmp_path: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "fleet"
    minifleet.write_minifleet(repo)
    minifleet.edit_yaml(
        repo / "fleet/policy.yaml",
        lambda d: d.setdefault("health_gates", {}).__setitem__("max_field_escape_rate", 0.05),
    )
    assert main(["validate", "--repo", str(repo)]) == 0  # the policy's new gate validates
    spec, _ = load(DirectorySource(repo))
    assert spec.policy.health_gates.max_field_escape_rate == 0.05
    frames = tmp_path / "upload"
    spooled(frames, 12, "sample")
    spooled(frames, 2, "defect", "scratch")  # kept for another reason: no audit sample
    events = tmp_path / "events.jsonl"
    events.write_text("")
    ws = ["--state", str(tmp_path / "trainer"), "--fleet-repo", str(repo)]
    capsys.readouterr()

    ingest = ["labels", "ingest-events", str(events), "--frames", str(frames), *ws]
    assert main(ingest) == 0
    assert "14 frame(s) stored, 12 audit sample(s) to label" in capsys.readouterr().out
    assert main(ingest) == 0  # the same upload again: nothing new
    assert "0 audit sample(s) to label" in capsys.readouterr().out

    assert main(["labels", "tasks", "--kind", "sample", "--format", "json", *ws]) == 0
    tasks = json.loads(capsys.readouterr().out)["tasks"]
    assert len(tasks) == 12 and {t["kind"] for t in tasks} == {"sample"}
    assert {t["line"] for t in tasks} == {LINE}
    for n, task in enumerate(tasks[:10]):  # 4 of 10 labelled turn out to be defects
        cls = "scratch" if n < 4 else "ok"
        assert (
            main(["labels", "review", str(task["id"]), "--class", cls, "--reviewer", "qa", *ws])
            == 0
        )
        assert f"labelled {cls} (surface-defects@2)" in capsys.readouterr().out

    assert main(["labels", "tasks", "--kind", "sample", *ws]) == 0
    assert "2 open task(s)" in capsys.readouterr().out
    assert main(["labels", "escapes", "--format", "json", *ws]) == 0
    estimate = json.loads(capsys.readouterr().out)["field_escapes"][LINE]
    assert (estimate["sampled"], estimate["labelled"]) == (12, 10)
    r = estimate["rate"]
    assert (r["count"], r["of"], r["value"]) == (4, 10, 0.4)
    assert r["low"] == pytest.approx(0.168, abs=1e-3) and r["high"] == pytest.approx(
        0.687, abs=1e-3
    )
    assert main(["labels", "escapes", *ws]) == 0
    assert "4 of 10 defective: 0.400 (0.168-0.687)" in capsys.readouterr().out

    # status: the device that serves the line (from the reconciler's records) is Degraded
    from linefleet_core.wire import LineStatus, ReportedState
    from reconciler.service.observed import Observations
    from reconciler.service.store import Store

    obs = Observations()
    report = ReportedState(
        protocol=1, kind="ReportedState", site="toledo", device="toledo-edge-1",
        at=dt.datetime.now(dt.UTC),
        lines=[LineStatus(line=LINE, phase="serving", serving="surface-classifier@2")],
    )  # fmt: skip
    item = obs.device("toledo", "toledo-edge-1")
    item.reported, item.last_seen, item.online = report, report.at.timestamp(), True
    store = Store(tmp_path / "reconciler")
    store.save(obs, set(obs.devices), Counter())
    store.close()
    labels_db = str(tmp_path / "trainer" / "labels.db")
    status = ["status", "--broker", mosquitto.url, "--state-dir", str(tmp_path / "reconciler")]
    status += ["--repo", str(repo), "--labels", labels_db]
    assert main(status) == 0
    out = capsys.readouterr().out
    assert "toledo/toledo-edge-1: Degraded (HealthGate): toledo/line-1 lower bound of " \
        "max_field_escape_rate: 0.168 > 0.05" in out  # fmt: skip
    assert f"{LINE}" in out and "12 sampled  4 of 10 defective: 0.400 (95% 0.168-0.687)" in out
    assert main([*status, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["field_escapes"][LINE]["rate"]["count"] == 4
    (dev,) = [d for d in doc["devices"] if d["device"] == "toledo-edge-1"]
    assert dev["health"]["status"] == "Degraded"

    # the report: the estimate with its interval and the gate's verdict
    page = tmp_path / "report.html"
    assert main(["report", "--out", str(page), "--repo", str(repo), "--labels", labels_db]) == 0
    html = page.read_text()
    section = html.split('id="escapes"')[1].split("</section>")[0]
    assert "<td>toledo/line-1</td><td>12</td><td>10</td><td>4</td>" in section
    assert "0.400 (0.168-0.687)" in section and "past the gate" in section


def test_ingest_names_each_frame_file_and_event_line_it_skips_and_takes_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "fleet"
    minifleet.write_minifleet(repo)
    frames = tmp_path / "upload"
    spooled(frames, 3, "sample")
    good = (frames / "sample-000.lff").read_bytes()
    (frames / "half.lff").write_bytes(good[: len(good) // 2])  # an upload cut off mid-write
    (frames / "junk.lff").write_bytes(b"LFF1\x00\x00\x00\xffnot an envelope")
    (frames / "folder.lff").mkdir()  # read_bytes() raised IsADirectoryError: a crash, exit 3
    (frames / "gone.lff").symlink_to(tmp_path / "nowhere")
    events = tmp_path / "events.jsonl"
    events.write_text('\n{"not json\n{"protocol": 1}\n')
    ws = ["--state", str(tmp_path / "trainer"), "--fleet-repo", str(repo)]
    capsys.readouterr()

    assert main(["labels", "ingest-events", str(events), "--frames", str(frames), *ws]) == 1
    out, err = capsys.readouterr()
    assert "3 frame(s) stored, 3 audit sample(s) to label" in out and "6 invalid" in out
    skipped = err.splitlines()
    assert f"skipped: {frames / 'folder.lff'}: cannot read (Is a directory)" in skipped
    assert f"skipped: {frames / 'gone.lff'}: cannot read (No such file or directory)" in skipped
    assert any(s.startswith(f"skipped: {frames / 'half.lff'}: image bytes") for s in skipped)
    assert any(s.startswith(f"skipped: {frames / 'junk.lff'}: ") for s in skipped)
    assert any(s.startswith(f"skipped: {events}:2: Unterminated string") for s in skipped)
    assert any(s.startswith(f"skipped: {events}:3: ") and "more)" in s for s in skipped)
    assert "Traceback" not in err

    missing = ["labels", "ingest-events", str(events), "--frames", str(tmp_path / "nope"), *ws]
    assert main(missing) == 2  # was: 0 frames found, exit 0, as if the folder were empty
    assert f"--frames {tmp_path / 'nope'}: no such directory" in capsys.readouterr().err


def test_a_frame_from_a_device_that_does_not_serve_its_line_and_camera_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An envelope names its own line: a hand-written client's frame for a line its device does
    not serve would otherwise count in that line's audit sample and escape estimate."""
    repo = tmp_path / "fleet"
    minifleet.write_minifleet(repo)
    frames = tmp_path / "upload"
    spooled(frames, 2, "sample")  # toledo-edge-1 on toledo/line-1 cam-1: served
    spooled(frames, 1, "sample", claims=("toledo-edge-2", "toledo/line-2", "cam-1"))
    spooled(frames, 1, "sample", claims=("toledo-egde-1", LINE, "cam-1"))
    events = tmp_path / "events.jsonl"
    events.write_text("")
    ws = ["--state", str(tmp_path / "trainer"), "--fleet-repo", str(repo)]
    capsys.readouterr()

    assert main(["labels", "ingest-events", str(events), "--frames", str(frames), *ws]) == 1
    out, err = capsys.readouterr()
    assert "2 frame(s) stored, 2 audit sample(s) to label" in out and "2 invalid" in out
    assert (
        f"skipped: {frames / 'toledo-edge-2-0.lff'}: device 'toledo-edge-2' does not serve "
        "toledo/line-2 cam-1 (it serves toledo/line-2 cam-2)" in err
    )
    assert (
        f"skipped: {frames / 'toledo-egde-1-0.lff'}: unknown device 'toledo-egde-1'; "
        "did you mean 'toledo-edge-1'?" in err
    )
