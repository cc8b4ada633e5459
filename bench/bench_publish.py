"""Benchmark: publish a 1,000-device fleet to a local Mosquitto; cost of a one-line change.

Set-up (not timed): `linefleet fleet generate` with 20 sites x 50 lines x 2 cameras and 50
devices per site (1,000 devices, one line each), committed to a git repository; a fresh
Mosquitto (`max_queued_messages 0`) on a free loopback port; a separate process simulating
1,000 devices that answer each desired state with a reported state that applies it.

Timed, in this process, through the same functions `linefleet publish` runs:
1. full publish: load + validate the commit, compile, sign, read the broker's retained
   state, publish, wait for every PUBACK; and the time from the start of the publish until
   `reconciler.service.fleetstatus` shows all 1,000 devices Synced (target: under 3 s);
2. after changing one line's rollout: messages sent must equal the devices serving it;
3. a re-run with no change: zero messages.

Prints the JSON result for bench/run.py on stdout; progress on stderr.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SITES, LINES, DEVICES, CAMERAS = 20, 50, 50, 2
TARGET_SYNCED_S = 3.0
BIN = Path(sys.executable).parent


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def simulate_devices(host: str, port: int, ready: Any) -> None:
    """One MQTT client playing every device: desired in, reported (applied) out."""
    import datetime as dt

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-devices")
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)

    def on_message(c: Any, _u: Any, msg: Any) -> None:
        if not msg.payload:
            return
        doc = json.loads(msg.payload)
        applied = {"generation": doc["generation"], "content_hash": doc["content_hash"]}
        report = {
            "protocol": 1,
            "kind": "ReportedState",
            "site": doc["site"],
            "device": doc["device"],
            "at": dt.datetime.now(dt.UTC).isoformat(),
            "desired": applied,
            "applied": applied,
            "lines": [
                {"line": ln["line"], "phase": "serving", "serving": ln["serving"]["ref"]}
                for ln in doc["spec"]["lines"]
            ],
        }
        topic = msg.topic.rsplit("/", 1)[0] + "/reported"
        c.publish(topic, json.dumps(report).encode(), qos=1, retain=True)

    def on_connect(c: Any, *_: Any) -> None:
        c.subscribe("linefleet/v1/+/+/desired", qos=1)

    client.on_message = on_message
    client.on_connect = on_connect
    client.on_subscribe = lambda *_: ready.set()
    client.connect(host, port)
    client.loop_forever()


class Watcher:
    """Counts devices whose reported state `reconciler.service.fleetstatus` calls Synced."""

    def __init__(self, host: str, port: int) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from reconciler.service.observed import Observations

        self.observations = Observations()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-watcher")
        self.client.on_message = lambda _c, _u, m: self.observations.ingest(
            m.topic, bytes(m.payload), time.time()
        )
        self.client.connect(host, port)
        self.client.subscribe("linefleet/v1/+/+/reported", qos=1)
        self.client.loop_start()

    def synced(self, desired: dict[str, Any]) -> int:
        from reconciler.service.fleetstatus import fleet_status

        status = fleet_status(desired, self.observations)
        return status.counts()["Synced"]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def commit_all(repo: Path, message: str) -> None:
    for argv in (["git", "add", "-A"], ["git", "commit", "-q", "-m", message]):
        subprocess.run(argv, cwd=repo, check=True)


LOAD_AT_START = os.getloadavg()[0]


def main() -> int:
    from linefleet_core.mqtturl import BrokerAddress
    from linefleet_core.signing import SigningKey
    from reconciler.service.compile import compile_fleet
    from reconciler.service.publish import load_revision, publish, sign_all
    from tests.support.mosquitto import Mosquitto

    with tempfile.TemporaryDirectory(prefix="linefleet-bench-publish-") as tmp:
        repo = Path(tmp) / "fleet-repo"
        generate = [
            str(BIN / "linefleet"), "fleet", "generate", "--out", str(repo),
            "--sites", str(SITES), "--lines-per-site", str(LINES),
            "--cameras-per-line", str(CAMERAS), "--devices-per-site", str(DEVICES),
        ]  # fmt: skip
        log(f"generating {SITES * DEVICES} devices ...")
        subprocess.run(generate, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
        for key, value in (("user.name", "bench"), ("user.email", "bench@linefleet.invalid")):
            subprocess.run(["git", "config", key, value], cwd=repo, check=True)
        commit_all(repo, "generated fleet")
        key = SigningKey.generate()
        base = repo.resolve().as_uri()
        broker = Mosquitto(Path(tmp) / "broker").start()
        ready = multiprocessing.Event()
        devices = multiprocessing.Process(
            target=simulate_devices, args=(broker.host, broker.port, ready), daemon=True
        )
        devices.start()
        ready.wait(10)
        watcher = Watcher(broker.host, broker.port)
        address = BrokerAddress.parse(broker.url)
        try:
            t0 = time.perf_counter()
            revision = load_revision(repo, "HEAD")
            t_load = time.perf_counter() - t0
            t1 = time.perf_counter()
            docs = compile_fleet(revision.spec, revision.commit, revision.generation, base)
            t_compile = time.perf_counter() - t1
            t2 = time.perf_counter()
            sign_all(docs, key)
            t_sign = time.perf_counter() - t2
            log(f"publishing {len(docs)} documents ...")
            desired = {f"{d.site}/{d.device}": d for d in docs.values()}
            t3 = time.perf_counter()
            first = publish(revision, address, key, base)
            t_publish = time.perf_counter() - t3
            while watcher.synced(desired) < len(desired) and time.perf_counter() - t3 < 60:
                time.sleep(0.1)
            t_synced = time.perf_counter() - t3
            synced = watcher.synced(desired)
            log(f"published {first.published}; {synced} Synced after {t_synced:.2f}s")

            # one line changes: only its devices get a message
            line_file = next((repo / "fleet/sites").glob("*/lines/line-7.yaml"))
            doc = yaml.safe_load(line_file.read_text())
            doc["rollout"].setdefault("telemetry", {})["daily_upload_budget_mb"] = 7.0
            line_file.write_text(yaml.safe_dump(doc, sort_keys=False))
            commit_all(repo, "one line: smaller upload budget")
            t4 = time.perf_counter()
            revision2 = load_revision(repo, "HEAD")
            second = publish(revision2, address, key, base)
            t_second = time.perf_counter() - t4
            site, line_id = line_file.parts[-3], line_file.stem
            affected = sum(
                1
                for d in revision2.spec.devices.values()
                if d.site == site and any(s.line == line_id for s in d.serves)
            )
            t5 = time.perf_counter()
            third = publish(load_revision(repo, "HEAD"), address, key, base)
            t_third = time.perf_counter() - t5
        finally:
            watcher.close()
            devices.terminate()
            broker.stop()

    met = synced == len(docs) and t_synced < TARGET_SYNCED_S
    load = LOAD_AT_START
    results = {
        "devices": len(docs),
        "load_validate_s": round(t_load, 3),
        "compile_s": round(t_compile, 3),
        "sign_s": round(t_sign, 3),
        "publish_s": round(t_publish, 3),
        "messages_first": first.published,
        "publish_to_all_synced_s": round(t_synced, 3),
        "synced": synced,
        "one_line_change_messages": second.published,
        "one_line_change_affected_devices": affected,
        "one_line_change_s": round(t_second, 3),
        "no_change_messages": third.published,
        "no_change_s": round(t_third, 3),
        "load_average_at_start": round(load, 2),
    }
    markdown = f"""\
| step | wall time | MQTT messages |
|---|---|---|
| load + validate the commit (git objects, {len(docs)} devices) | {t_load:.2f} s | - |
| compile {len(docs)} desired states | {t_compile:.2f} s | - |
| sign {len(docs)} documents (Ed25519) | {t_sign:.2f} s | - |
| `publish()`: compile, sign, read the retained state, publish, wait for all PUBACKs | {t_publish:.2f} s | {first.published} |
| publish start → all {len(docs)} devices Synced in `reconciler.service.fleetstatus` | {t_synced:.2f} s | {first.published} + {synced} reported |
| one line changed: load + publish | {t_second:.2f} s | {second.published} (devices serving the line: {affected}) |
| nothing changed: load + publish | {t_third:.2f} s | {third.published} |

Devices are simulated by one MQTT client in a separate process that answers each desired
state with a reported state applying it; a watcher in the publishing process feeds the
reported states to `reconciler.service.fleetstatus.fleet_status` and stops the clock when every device
is Synced. Reading the broker's retained state (ended by a barrier message) is part of every
publish. Load average when the run started: {load:.1f} on {os.cpu_count()} cores (other work
on the machine shares them: treat single runs as indicative).
"""  # noqa: E501
    print(
        json.dumps(
            {
                "benchmark": "publish",
                "title": f"linefleet publish: {len(docs)} devices on local Mosquitto",
                "command": "python bench/bench_publish.py",
                "target": f"publish to all devices Synced under {TARGET_SYNCED_S:g} s; "
                "a one-line change sends only the affected devices' documents",
                "met": met and second.published == affected and third.published == 0,
                "results": results,
                "markdown": markdown,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
