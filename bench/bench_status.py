"""Benchmark: `linefleet status` and `linefleet report` on 10,000 devices (loopback Mosquitto).

Set-up (not timed): `linefleet fleet generate` with 50 sites x 200 lines x 1 camera and 200
devices per site (10,000 devices, one line each), committed to git; a fresh Mosquitto
(`max_queued_messages 0`) on a free loopback port; the fleet published through
`reconciler.service.publish` (10,000 retained desired documents); then, for every device, a
retained reported state that applies its document with a metrics window, and a retained
online birth (30,000 retained messages in all, as a converged fleet holds).

Timed: each command in a fresh process (imports included: what a user waits for), once
untimed first, then REPEAT times interleaved; medians, min and max:
- `linefleet status --broker URL` (the table), and `--format json`;
- `linefleet status --broker URL --repo REPO` (also reads the fleet and asks git whether a
  device's document lags HEAD);
- `linefleet report --broker URL --repo REPO --out FILE` (and the page's size).

Prints the JSON result for bench/run.py on stdout; progress on stderr.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_publish import BIN, commit_all, log
from bench_validate import _stats, interleaved

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SITES, LINES = 50, 200
REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))
TARGET_STATUS_S = 2.0
PYTHON = [sys.executable, "-m", "linefleet"]


def report_of(doc: dict[str, Any], at: str, n: int) -> bytes:
    """The reported state of a device that converged to `doc`, with one metrics window."""
    applied = {"generation": doc["generation"], "content_hash": doc["content_hash"]}
    lines = []
    for line in doc["spec"]["lines"]:
        metrics = {
            "window_seconds": 60.0,
            "frames": 600,
            "error_rate": 0.0,
            "latency_p95_ms": 9.0 + n % 7,
            "defect_rate": 0.01 * (n % 5),
            "drift_score": 0.05 * (n % 3),
        }
        lines.append(
            {"line": line["line"], "phase": "serving", "serving": line["serving"]["ref"],
             "metrics": metrics}
        )  # fmt: skip
    body = {
        "protocol": 1, "kind": "ReportedState", "site": doc["site"], "device": doc["device"],
        "at": at, "agent": "bench", "desired": applied, "applied": applied, "lines": lines,
    }  # fmt: skip
    return json.dumps(body).encode()


def fill_broker(repo: Path, url: str) -> int:
    """Publish the fleet, then every device's report and online birth; return the devices."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from linefleet_core.mqtturl import BrokerAddress
    from linefleet_core.signing import SigningKey
    from reconciler.service.compile import compile_fleet
    from reconciler.service.publish import load_revision, publish

    revision = load_revision(repo, "HEAD")
    base = repo.resolve().as_uri()
    address = BrokerAddress.parse(url)
    publish(revision, address, SigningKey.generate(), base)
    docs = compile_fleet(revision.spec, revision.commit, revision.generation, base)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-devices")
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    client.connect(address.host, address.port)
    client.loop_start()
    now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    infos = []
    for n, doc in enumerate(docs.values()):
        wire = doc.model_dump(mode="json")
        root = f"linefleet/v1/{doc.site}/{doc.device}"
        infos.append(client.publish(f"{root}/reported", report_of(wire, now, n), 1, True))
        infos.append(client.publish(f"{root}/online", b'{"online":true,"protocol":1}', 1, True))
    for info in infos:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()
    return len(docs)


def check_status(url: str, cwd: Path, devices: int) -> dict[str, int]:
    """The status the bench times must see every device Synced (else it times the wrong thing)."""
    argv = [*PYTHON, "status", "--broker", url, "--format", "json"]
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=True)
    counts: dict[str, int] = json.loads(proc.stdout)["counts"]
    if counts.get("Synced") != devices:
        raise SystemExit(f"expected {devices} Synced devices, got {counts}")
    return counts


def main() -> int:
    from tests.support.mosquitto import Mosquitto

    with tempfile.TemporaryDirectory(prefix="linefleet-bench-status-") as tmp:
        repo = Path(tmp) / "fleet-repo"
        generate = [
            str(BIN / "linefleet"), "fleet", "generate", "--out", str(repo),
            "--sites", str(SITES), "--lines-per-site", str(LINES),
            "--cameras-per-line", "1", "--devices-per-site", str(LINES),
        ]  # fmt: skip
        log(f"generating {SITES * LINES} devices ...")
        subprocess.run(generate, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
        for key, value in (("user.name", "bench"), ("user.email", "bench@linefleet.invalid")):
            subprocess.run(["git", "config", key, value], cwd=repo, check=True)
        commit_all(repo, "generated fleet")
        broker = Mosquitto(Path(tmp) / "broker").start()
        try:
            log("publishing and reporting ...")
            t0 = time.perf_counter()
            devices = fill_broker(repo, broker.url)
            log(f"{devices} devices on the broker in {time.perf_counter() - t0:.1f} s")
            counts = check_status(broker.url, repo, devices)
            page = Path(tmp) / "report.html"
            commands = {
                "status": [[*PYTHON, "status", "--broker", broker.url]],
                "status --format json": [
                    [*PYTHON, "status", "--broker", broker.url, "--format", "json"]
                ],
                "status --repo": [[*PYTHON, "status", "--broker", broker.url, "--repo", "."]],
                "report": [
                    [*PYTHON, "report", "--broker", broker.url, "--repo", ".", "--out", str(page)]
                ],
            }
            load_before = os.getloadavg()[0]
            times = interleaved(commands, repo)
            load_after = os.getloadavg()[0]
            page_bytes = page.stat().st_size
        finally:
            broker.stop()

    wall = {name: [w for w, _ in runs] for name, runs in times.items()}
    cpu = {name: [c for _, c in runs] for name, runs in times.items()}
    med = {name: statistics.median(values) for name, values in wall.items()}
    met = med["status"] < TARGET_STATUS_S
    shown = {
        "status": "linefleet status --broker URL",
        "status --format json": "linefleet status --broker URL --format json",
        "status --repo": "linefleet status --broker URL --repo .",
        "report": "linefleet report --broker URL --repo . --out report.html",
    }
    rows = [
        f"| `{shown[name]}` | {med[name]:.3f} s | {min(wall[name]):.3f} s | "
        f"{max(wall[name]):.3f} s | {statistics.median(cpu[name]):.3f} s |"
        for name in commands
    ]
    markdown = "\n".join(
        [
            f"Fleet: `linefleet fleet generate --sites {SITES} --lines-per-site {LINES} "
            f"--cameras-per-line 1 --devices-per-site {LINES}` — {devices:,} devices, one line "
            f"each — published to a fresh loopback Mosquitto, then a retained reported state "
            f"(converged, with a metrics window) and an online birth per device: "
            f"{3 * devices:,} retained messages ({counts.get('Synced', 0):,} devices Synced). "
            f"Each command runs in a fresh process (imports included), {REPEAT} times after "
            f"one warm-up, interleaved. Load average (1 min) {load_before:.2f} before, "
            f"{load_after:.2f} after, on {os.cpu_count()} shared cores.",
            "",
            "| command | wall median | min | max | CPU median |",
            "|---|---|---|---|---|",
            *rows,
            "",
            f"**`linefleet status` on {devices:,} devices takes {med['status']:.2f} s** "
            f"(target: under {TARGET_STATUS_S:g} s). The report page is {page_bytes / 1024:.0f} "
            "KiB: above `linefleet.report.sites.DETAIL_LINES` lines it groups by site and "
            "summarises each site's lines instead of drawing every line's charts.",
        ]
    )
    result: dict[str, Any] = {
        "benchmark": "status",
        "title": f"linefleet status and report, {devices:,} devices",
        "command": "python bench/bench_status.py (times: " + "; ".join(shown.values()) + ")",
        "target": f"status under {TARGET_STATUS_S:g} s on 10,000 devices",
        "met": met,
        "results": {
            "devices": devices,
            "repeat": REPEAT,
            "report_bytes": page_bytes,
            "load_average_1m": [round(load_before, 2), round(load_after, 2)],
            **{
                f"{name.replace(' --', '_').replace(' ', '_')}_s": _stats(v)
                for name, v in wall.items()
            },
        },
        "markdown": markdown,
    }
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    log(", ".join(f"{name} {value:.3f} s" for name, value in med.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
