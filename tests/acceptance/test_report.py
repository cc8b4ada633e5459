"""`linefleet report` as a user runs it, opened in real headless Chromium.

The fleet: the mini fleet in git (a promotion commit moves toledo/line-1's candidate from
shadow to canary), desired state published to a real Mosquitto by `linefleet publish`, devices'
reported states retained on the broker, a metrics history file and a label store. Chromium is
driven over the DevTools protocol on a pipe (standard library only): the page must load with no
console message, no exception, no failed or external request, and show the key text.
"""

from __future__ import annotations

import base64
import datetime as dt
import fcntl
import json
import os
import select
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from linefleet.cli import main
from linefleet.report.history import record
from linefleet_core.wire import LineMetrics, LineStatus, ReportedState, topic
from tests.support import minifleet
from tests.support.mosquitto import Mosquitto, mosquitto

__all__ = ["mosquitto"]
pytestmark = pytest.mark.acceptance
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
]


class Chromium:
    """Just enough of the DevTools protocol over `--remote-debugging-pipe` (fds 3 and 4)."""

    def __init__(self, profile: Path) -> None:
        assert Path(CHROMIUM).is_file(), "chromium missing: run `make setup` (.ci/install-chromium)"
        to_child, self._out = os.pipe()
        self._in, from_child = os.pipe()

        def fds() -> None:  # runs in the child before it closes every fd not in pass_fds
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_child, from_child)]
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            preexec_fn=fds,
            pass_fds=(3, 4),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child)
        os.close(from_child)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        os.close(self._out)
        os.close(self._in)

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._in], [], [], max(0.0, left))
            if not ready:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self._buf += chunk
        raw, _, self._buf = self._buf.partition(b"\0")
        message: dict[str, Any] = json.loads(raw)
        return message

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session is not None:
            msg["sessionId"] = session
        os.write(self._out, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + 30
        while True:
            got = self._read(deadline)
            if got.get("id") == self._id:
                assert "error" not in got, got
                result: dict[str, Any] = got["result"]
                return result
            self.events.append(got)

    def wait_event(self, method: str, timeout: float = 30) -> None:
        if any(e.get("method") == method for e in self.events):
            return
        deadline = time.monotonic() + timeout
        while True:
            got = self._read(deadline)
            self.events.append(got)
            if got.get("method") == method:
                return

    def problems(self) -> list[str]:
        out = []
        urls = {
            e["params"]["requestId"]: e["params"]["request"]["url"]
            for e in self.events
            if e.get("method") == "Network.requestWillBeSent"
        }
        for e in self.events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.consoleAPICalled":
                out.append(f"console.{params['type']}: {params.get('args')}")
            elif method == "Runtime.exceptionThrown":
                out.append(f"exception: {params['exceptionDetails']}")
            elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
                out.append(f"log: {params['entry']['text']}")
            elif method == "Network.loadingFailed":
                url = urls.get(params["requestId"], "?")
                out.append(f"failed request: {url}: {params.get('errorText')}")
            elif method == "Network.requestWillBeSent":
                url = params["request"]["url"]
                if not url.startswith(("file:", "data:", "about:")):
                    out.append(f"external request: {url}")
        return out


def open_page(path: Path, profile: Path, screenshot: Path) -> tuple[str, list[str]]:
    """Load `path`; return the page's visible text and every problem the browser saw."""
    browser = Chromium(profile)
    try:
        pages = [t for t in browser.call("Target.getTargets")["targetInfos"] if t["type"] == "page"]
        session = browser.call(
            "Target.attachToTarget", targetId=pages[0]["targetId"], flatten=True
        )["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            browser.call(f"{domain}.enable", session)
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            session,
            width=1200,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )
        browser.call("Page.navigate", session, url=path.resolve().as_uri())
        browser.wait_event("Page.loadEventFired")
        text = browser.call(
            "Runtime.evaluate", session, expression="document.body.innerText", returnByValue=True
        )["result"]["value"]
        size = browser.call("Page.getLayoutMetrics", session)["cssContentSize"]
        shot = browser.call(
            "Page.captureScreenshot",
            session,
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": 1200, "height": size["height"], "scale": 1},
        )
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        return str(text), browser.problems()
    finally:
        browser.close()


NOW = dt.datetime.now(dt.UTC)


def reported(
    device: str, site: str, at: dt.datetime, lines: list[LineStatus], applied: Any = None
) -> ReportedState:
    return ReportedState.model_validate(
        {
            "protocol": 1,
            "kind": "ReportedState",
            "site": site,
            "device": device,
            "at": at,
            "desired": applied,
            "applied": applied,
            "lines": lines,
        }
    )


def line(key: str, serving: str, p95: float, *, drift: float = 0.1, **extra: Any) -> LineStatus:
    metrics = LineMetrics(
        window_seconds=60,
        frames=720,
        latency_p95_ms=p95,
        defect_rate=0.03,
        drift_score=drift,
        shadow_agreement=extra.pop("agreement", None),
    )
    return LineStatus(line=key, serving=serving, metrics=metrics, **{"phase": "serving", **extra})


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "fleet"
    minifleet.write_minifleet(root)
    minifleet.init_repo(root)
    minifleet.commit_all(root, "the mini fleet")
    canary = {"model": "surface-classifier@3", "stage": "canary", "canary_fraction": 0.1}
    minifleet.edit_rollout(root, "toledo/line-1", candidate=canary)
    minifleet.commit_all(root, "toledo/line-1: surface-classifier@3 to canary")
    return root


def publish_fleet(repo: Path, broker: Mosquitto, tmp_path: Path, capsys: Any) -> dict[str, Any]:
    """`linefleet publish`, then each device's desired state as `linefleet status` shows it."""
    keys = tmp_path / "keys"
    assert main(["keys", "generate", "--out", str(keys)]) == 0
    key = keys / "signing.key"
    assert (
        main(["publish", "--broker", broker.url, "--repo", str(repo), "--signing-key", str(key)])
        == 0
    )
    capsys.readouterr()
    assert main(["status", "--broker", broker.url, "--format", "json"]) == 0
    status = json.loads(capsys.readouterr().out)
    return {d["device"]: d["desired"] for d in status["devices"]}


def retain(broker: Mosquitto, reports: list[ReportedState]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="report-test-devices")
    client.connect(broker.host, broker.port)
    client.loop_start()
    for rep in reports:
        info = client.publish(
            topic(rep.site, rep.device, "reported"), rep.model_dump_json(), qos=1, retain=True
        )
        info.wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


def label_store(path: Path, repo: Path) -> None:
    """Two inspector overrides (one confirmed by QA) and one new annotator's label."""
    from linefleet_core.spec import DirectorySource, load
    from trainer.events import EventKind, NewEvent
    from trainer.store import LabelStore

    spec, _ = load(DirectorySource(repo))
    store = LabelStore.open(f"sqlite:///{path}", spec.taxonomies)
    for frame in ("a" * 64, "b" * 64, "c" * 64):
        store.register_frame(frame, "toledo", "line-1", "cam-1")
    tax = "surface-defects@2"
    first, _ = store.append(
        [
            NewEvent(EventKind.OVERRIDE, "insp-7", frame="a" * 64, cls="scratch", taxonomy=tax,
                     model_said="ok", model_version="surface-classifier@2", source_id="e-1"),
            NewEvent(EventKind.OVERRIDE, "insp-7", frame="b" * 64, cls="dust", taxonomy=tax,
                     model_said="ok", model_version="surface-classifier@2", source_id="e-2"),
        ]
    )  # fmt: skip
    store.append([NewEvent(EventKind.QA, "qa-lead", target=first, detail="confirm")])
    store.append(
        [NewEvent(EventKind.ANNOTATION, "new-ana", frame="c" * 64, cls="ok", taxonomy=tax)]
    )
    store.close()


def test_report_renders_in_chromium_without_console_errors(
    repo: Path, mosquitto: Mosquitto, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    desired = publish_fleet(repo, mosquitto, tmp_path, capsys)
    held = {
        dev: {"generation": d["generation"], "content_hash": d["content_hash"]}
        for dev, d in desired.items()
    }
    history = tmp_path / "history.jsonl"
    record(
        history,
        [
            reported("toledo-edge-1", "toledo", NOW - dt.timedelta(minutes=m), [
                line("toledo/line-1", "surface-classifier@2", 30 + m, candidate="surface-classifier@3",
                     stage="canary", agreement=0.97),
            ])
            for m in (50, 40, 30, 20, 10)
        ],
    )  # fmt: skip
    retain(
        mosquitto,
        [
            reported("toledo-edge-1", "toledo", NOW, [
                line("toledo/line-1", "surface-classifier@2", 42.0, candidate="surface-classifier@3",
                     stage="canary", agreement=0.96),
                line("toledo/line-2", "surface-classifier@2", 38.0),
            ], held["toledo-edge-1"]),
            reported("toledo-edge-2", "toledo", NOW - dt.timedelta(hours=3), [
                line("toledo/line-2", "surface-classifier@2", 35.0),
            ], held["toledo-edge-2"]),
            reported("dresden-edge-1", "dresden", NOW, [
                line("dresden/line-1", "surface-classifier@2", 51.0, drift=0.45,
                     phase="rolled_back", message="<b>bold</b> & rolled back"),
                line("dresden/line-2", "surface-classifier@1", 47.0),
            ], held["dresden-edge-1"]),
        ],
    )  # fmt: skip
    labels = tmp_path / "labels.db"
    label_store(labels, repo)
    out = tmp_path / "report.html"

    code = main(
        ["report", "--out", str(out), "--repo", str(repo), "--broker", mosquitto.url,
         "--history", str(history), "--record", "--labels", str(labels)]
    )  # fmt: skip

    printed = capsys.readouterr()
    assert (code, printed.err) == (0, "")
    assert printed.out.startswith(f"wrote {out}: 5 line(s), sources: broker {mosquitto.url}")
    assert len(history.read_text().splitlines()) == 5 + 3  # --record added the three devices
    page = out.read_text()
    assert "<script" not in page and "http://" not in page and "https://" not in page

    shot = Path(os.environ.get("LINEFLEET_REPORT_SCREENSHOT", tmp_path / "report.png"))
    text, problems = open_page(out, tmp_path / "chromium-profile", shot)

    assert problems == []
    assert shot.read_bytes().startswith(b"\x89PNG")
    for expected in [
        "Linefleet fleet report",
        "Site toledo",
        "Site dresden",
        "✓ Synced",
        "▲ Degraded",
        "◷ Stale",
        "toledo/line-1: surface-classifier@3 shadow → canary",
        "Latency p95 42.0 ms now",
        "Drift score 0.45 now — above the 0.30 limit",
        "Shadow agreement 96.0% now",
    ]:
        assert expected in text, expected
    assert "<b>bold</b> & rolled back" not in text  # the phase message is not shown raw...
    rows = {row.split("\t")[0]: row.split("\t")[-1] for row in text.splitlines() if "\t" in row}
    assert rows["Inspector overrides waiting for QA"] == "1"
    assert rows["New annotators' labels waiting for audit"] == "1"
    assert rows["Overrides confirmed since the last dataset version (the start)"] == "1"
    assert rows["Re-review tasks (taxonomy changes)"] == "0"


def test_without_sources_every_section_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "empty.html"
    assert main(["report", "--out", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out}: 0 line(s), sources: none\n"
    page = out.read_text()
    for said in ["No fleet data", "No metrics", "No rollout history", "No label data"]:
        assert said in page


def test_bad_inputs_exit_with_a_located_message_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.html"
    history = tmp_path / "history.jsonl"
    history.write_text('{"protocol": 1, "kind": "ReportedState"}\n')
    assert main(["report", "--out", str(out), "--history", str(history)]) == 1
    err = capsys.readouterr().err
    assert f"{history}:1:" in err and "Traceback" not in err

    assert main(["report", "--out", str(out), "--labels", str(tmp_path / "nope.db")]) == 2
    assert "no such label store" in capsys.readouterr().err
    assert main(["report", "--out", str(out), "--record"]) == 2
    assert "--record needs --history" in capsys.readouterr().err
    assert main(["report", "--out", str(tmp_path / "no" / "r.html"), "--repo", str(tmp_path)]) == 2
    assert not out.exists() and list(tmp_path.iterdir()) == [history]


def test_the_browser_check_catches_console_errors_and_outside_requests(tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><html><head><link rel="stylesheet" href="https://example.invalid/x.css">'
        '</head><body><p>hi</p><img src="missing.png">'
        '<script>console.error("boom"); undefinedFn();</script></body></html>'
    )
    text, problems = open_page(bad, tmp_path / "profile", tmp_path / "bad.png")
    assert text == "hi"
    found = "\n".join(problems)
    assert "console.error" in found and "boom" in found
    assert "undefinedFn" in found
    assert "external request: https://example.invalid/x.css" in found
    assert "missing.png" in found


def test_from_the_reconciler_state_dir_alone(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from reconciler.service.observed import Observations
    from reconciler.service.store import Store

    now = dt.datetime.now(dt.UTC)  # the module's clock may be minutes old in a full run
    obs = Observations()
    for rep in [
        reported("toledo-edge-1", "toledo", now, [line("toledo/line-1", "surface-classifier@2", 40.0)]),
        reported("dresden-edge-1", "dresden", now - dt.timedelta(hours=5), [
            line("dresden/line-1", "surface-classifier@2", 40.0),
        ]),
    ]:  # fmt: skip
        item = obs.device(rep.site, rep.device)
        item.reported, item.last_seen, item.online = rep, rep.at.timestamp(), True
    store = Store(tmp_path / "state")
    store.save(obs, set(obs.devices), Counter())
    store.close()
    out = tmp_path / "report.html"

    assert (
        main(
            [
                "report",
                "--out",
                str(out),
                "--state-dir",
                str(tmp_path / "state"),
                "--repo",
                str(repo),
            ]
        )
        == 0
    )

    page = out.read_text()
    assert 'cond-stale">◷ Stale</span>' in page  # dresden-edge-1: 5 h without a report
    assert "desired state not read: add --broker" in page  # toledo-edge-1: fresh, not judged
    assert "Synced" not in page.split("<main>")[1].split("<footer>")[0]
    assert "no device has reported this line" in page  # repo lines nobody reported
    assert "Metrics show only the latest report of each device" in page
