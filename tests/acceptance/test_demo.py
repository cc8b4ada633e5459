"""`linefleet demo --quick` as a user runs it: the whole loop really happens, Ctrl-C stops
every process it started, and a folder it did not make is never wiped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.waiting import wait_for

pytestmark = pytest.mark.acceptance


def _env() -> dict[str, str]:
    return {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONUNBUFFERED": "1"}


def _demo(state: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "linefleet", "demo", "--state-dir", str(state), "--quick"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
    )


def _processes_using(folder: Path) -> list[str]:
    """Command lines of live processes that name `folder` (the demo's children all do)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            status = (entry / "status").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if "State:\tZ" in status:
            continue
        text = " ".join(a.decode(errors="replace") for a in argv)
        if str(folder) in text and "linefleet demo" not in text.replace(
            "-m linefleet", "linefleet"
        ):
            found.append(text)
    return found


def _lf_json(*args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "linefleet", *args],
        capture_output=True,
        text=True,
        env=_env(),
        check=True,
    )
    return json.loads(done.stdout)


@pytest.mark.slow
def test_quick_demo_runs_the_whole_loop(tmp_path: Path) -> None:
    state = tmp_path / "demo"
    proc = _demo(state)
    out, _ = proc.communicate(timeout=280)
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    for heading in ("[1/9] Start the control room", "[5/9] Publish the fleet", "[9/9] Fleet"):
        assert heading in out

    summary = json.loads((state / "summary.json").read_text())
    for title, result in summary["stages"].items():
        assert result == "ok" or (
            result.startswith("skipped: ") and "is not built yet (issue" in result
        ), title
        if result != "ok":
            assert result.removeprefix("skipped: ") in out  # listed in the final summary

    # two promotion pull requests, opened by the trainer and merged in the local forge
    pulls = _lf_json(
        "pr", "list", "--repo", str(state / "fleet"), "--state", "all", "--format", "json"
    )
    merged = [p for p in pulls["pulls"] if p["state"] == "merged"]
    assert len(merged) >= 2 and all("promotion" in p["labels"] for p in merged)

    # the walked line serves the retrained model on its device; the regression was reverted
    walked = summary["walked"]
    status = json.loads((state / "status.json").read_text())
    rows = {r["line"]: r for d in status["devices"] for r in d["lines"]}
    assert rows[walked["line"]]["reported_serving"] == walked["model"]
    assert status["counts"]["Synced"] >= 2
    log = subprocess.run(
        ["git", "-C", str(state / "fleet"), "log", "--format=%s"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"Promote {walked['model']} to production on {walked['line']}" in log
    assert 'Revert "Try ' in log
    assert summary["edge_local_rollback"]["line"] == "toledo/paint-1"
    assert "p95 latency" in out and "80 ms" in out

    # every edge agent decided frames with a model; the inspectors' overrides were QA-confirmed
    results = sorted((state / "edge").glob("*/results.jsonl"))
    assert len(results) == 3
    for path in results:
        decided = [json.loads(x) for x in path.read_text().splitlines()]
        assert sum(1 for d in decided if d["label"] is not None) >= 30
    assert summary["qa_confirmed"] == summary["overrides"] > 0

    # models travel through the registry and Toledo's mirror: git holds YAML only, and no
    # signed document names a file:// URL
    assert not (state / "fleet" / "fleet" / "artifacts").exists()
    mirror = summary["mirror"]["toledo"]
    for path in sorted((state / "edge").glob("*/state/state.json")):
        document = json.loads(path.read_text())["document"]
        urls = {
            model["artifact"]["url"]
            for line in document["spec"]["lines"]
            for model in (line["serving"], line.get("previous"), line.get("candidate"))
            if model
        }
        assert urls and all(u.startswith(f"oci://{mirror}/") for u in urls), (path, urls)

    # the report charts the rollout over time: more than one recorded report with metrics per
    # device (how many more depends on the machine's speed against the heartbeat)
    history = [json.loads(x) for x in (state / "history.jsonl").read_text().splitlines()]
    moments: dict[str, set[str]] = {}
    for report in history:
        if any(line.get("metrics") for line in report["lines"]):
            moments.setdefault(report["device"], set()).add(report["at"])
    assert len(moments) == 3 and all(len(at) >= 2 for at in moments.values()), moments
    report = (state / "report.html").read_text()
    assert "metrics history" in report
    # the label queues come from the demo's label store (`--labels`), not "No label data"
    assert "Inspector overrides waiting for QA" in report and "No label data" not in report

    # nothing the demo started is still running
    assert _processes_using(state) == []


def test_ctrl_c_stops_every_process_the_demo_started(tmp_path: Path) -> None:
    state = tmp_path / "demo"
    state.mkdir()
    (state / ".linefleet-demo").write_text("")  # a previous run's state dir: wiped, rerunnable
    (state / "old-run.txt").write_text("stale")
    proc = _demo(state)

    def training() -> bool:
        assert proc.poll() is None, proc.communicate()[0]
        return (state / "trainer").exists() and len(_processes_using(state)) >= 2

    try:
        wait_for("the demo's training stage", training, 120, interval=0.2)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    assert "interrupted (SIGINT); stopped" in out
    assert _processes_using(state) == []
    assert not (state / "old-run.txt").exists()


def test_a_folder_it_did_not_make_is_never_wiped(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    proc = _demo(tmp_path)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "stage 1 (Start the control room)" in out and "was not made by `linefleet demo`" in out
    assert (tmp_path / "precious.txt").read_text() == "keep me"
    assert _processes_using(tmp_path) == []
