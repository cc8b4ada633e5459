"""Benchmark: publish 10,000 devices to a local Mosquitto; a one-line change; no change.

Set-up (not timed): `linefleet fleet generate` with 50 sites x 200 lines x 1 camera and 200
devices per site (10,000 devices, one line each; `--small`: 20 x 50 x 2 cameras, 50 devices
per site, 1,000 devices, for CI-size runs), committed to a git repository; a fresh Mosquitto
(`max_queued_messages 0`) on a free loopback port; a separate process simulating every device
(it answers each desired state with a reported state that applies it).

Timed, in this process, through `reconciler.service.incremental.publish_commit`, the function
`linefleet publish` runs:
1. the first publish (the full pass: no marker on the broker): load + validate the commit,
   compile, sign, read the broker's retained state, publish, every PUBACK; and the time from
   its start until `reconciler.service.fleetstatus` shows every device Synced;
2. one line's rollout changed and committed, then published (load to last PUBACK), REPEAT
   times on different lines (median): the incremental pass; messages sent must equal the
   devices serving the line; once more with `--full` for the ratio;
3. nothing changed, REPEAT times (median): zero messages.
The full pass's parts (load + validate, compile, sign) are timed once apart.

Prints the JSON result for bench/run.py on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZES = {  # sites, lines per site, cameras per line, devices per site
    "full": (50, 200, 1, 200),
    "small": (20, 50, 2, 50),
}
REPEAT = 5
TARGET_SYNCED_S = 3.0
TARGET_CHANGE_S = 1.0
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
        self.received = 0  # reports seen: fleet_status runs only once enough have come
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-watcher")
        self.client.on_message = self._ingest
        self.client.connect(host, port)
        self.client.subscribe("linefleet/v1/+/+/reported", qos=1)
        self.client.loop_start()

    def _ingest(self, _c: Any, _u: Any, msg: Any) -> None:
        self.observations.ingest(msg.topic, bytes(msg.payload), time.time())
        self.received += 1

    def wait_synced(self, desired: dict[str, Any], since: int, limit: float) -> int:
        """Wait until every device in `desired` is Synced (checked once `since` + its count
        of reports arrived, so the check does not take the cores from the publisher)."""
        end = time.perf_counter() + limit
        while time.perf_counter() < end:
            if self.received - since >= len(desired) and self.synced(desired) == len(desired):
                break
            time.sleep(0.02)
        return self.synced(desired)

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


def change_line(repo: Path, n: int) -> tuple[str, str]:
    """Change one line's upload budget (a different line each time); its site and id."""
    line_file = sorted((repo / "fleet/sites").glob(f"*/lines/line-{n + 2}.yaml"))[n]
    doc = yaml.safe_load(line_file.read_text())
    doc["rollout"].setdefault("telemetry", {})["daily_upload_budget_mb"] = 7.0 + n
    line_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    commit_all(repo, f"one line: smaller upload budget ({n})")
    return line_file.parts[-3], line_file.stem


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="1,000 devices (CI-size run)")
    size = "small" if parser.parse_args().small else "full"
    sites, lines, cameras, per_site = SIZES[size]

    from linefleet_core.mqtturl import BrokerAddress
    from linefleet_core.signing import SigningKey
    from reconciler.service.compile import compile_fleet
    from reconciler.service.incremental import publish_commit
    from reconciler.service.publish import load_revision, sign_all
    from tests.support.mosquitto import Mosquitto

    with tempfile.TemporaryDirectory(prefix="linefleet-bench-publish-") as tmp:
        repo = Path(tmp) / "fleet-repo"
        generate = [
            str(BIN / "linefleet"), "fleet", "generate", "--out", str(repo),
            "--sites", str(sites), "--lines-per-site", str(lines),
            "--cameras-per-line", str(cameras), "--devices-per-site", str(per_site),
        ]  # fmt: skip
        log(f"generating {sites * per_site} devices ...")
        subprocess.run(generate, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
        for name, value in (("user.name", "bench"), ("user.email", "bench@linefleet.invalid")):
            subprocess.run(["git", "config", name, value], cwd=repo, check=True)
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
            desired = {f"{d.site}/{d.device}": d for d in docs.values()}
            del revision, docs

            log(f"publishing {len(desired)} documents ...")
            t3 = time.perf_counter()
            first = publish_commit(repo, "HEAD", address, key, base)
            t_publish = time.perf_counter() - t3
            synced = watcher.wait_synced(desired, 0, 120)
            t_synced = time.perf_counter() - t3
            log(
                f"published {first.published} ({first.mode}); {synced} Synced after {t_synced:.2f}s"
            )

            changes: list[float] = []
            sent: list[tuple[int, int]] = []  # (messages, devices serving the line)
            spec = load_revision(repo, "HEAD").spec
            for n in range(REPEAT):
                site, line_id = change_line(repo, n)
                t4 = time.perf_counter()
                result = publish_commit(repo, "HEAD", address, key, base)
                changes.append(time.perf_counter() - t4)
                assert result.mode == "incremental", result.full_reason
                serving = sum(
                    1
                    for d in spec.devices.values()
                    if d.site == site and any(s.line == line_id for s in d.serves)
                )
                sent.append((result.published, serving))
            log(f"one-line change: {statistics.median(changes):.3f}s (median of {REPEAT})")

            site, line_id = change_line(repo, REPEAT)
            t5 = time.perf_counter()
            forced = publish_commit(repo, "HEAD", address, key, base, full=True)
            t_forced = time.perf_counter() - t5

            quiet: list[float] = []
            quiet_sent = 0
            for _ in range(REPEAT):
                t6 = time.perf_counter()
                result = publish_commit(repo, "HEAD", address, key, base)
                quiet.append(time.perf_counter() - t6)
                quiet_sent += result.published + result.pruned
            log(f"nothing changed: {statistics.median(quiet):.3f}s (median of {REPEAT})")
        finally:
            watcher.close()
            devices.terminate()
            broker.stop()

    n_devices = len(desired)
    t_change, t_quiet = statistics.median(changes), statistics.median(quiet)
    ok_messages = all(m == a for m, a in sent) and quiet_sent == 0 and forced.published == 1
    met = (
        synced == n_devices
        and t_synced < TARGET_SYNCED_S
        and t_change < TARGET_CHANGE_S
        and t_quiet < TARGET_CHANGE_S
        and ok_messages
    )
    load = LOAD_AT_START
    results = {
        "size": size,
        "devices": n_devices,
        "load_validate_s": round(t_load, 3),
        "compile_s": round(t_compile, 3),
        "sign_s": round(t_sign, 3),
        "first_publish_s": round(t_publish, 3),
        "messages_first": first.published,
        "publish_to_all_synced_s": round(t_synced, 3),
        "synced": synced,
        "one_line_change_s_median": round(t_change, 3),
        "one_line_change_s_samples": [round(t, 3) for t in changes],
        "one_line_change_messages_and_affected": sent,
        "one_line_change_full_pass_s": round(t_forced, 3),
        "one_line_change_full_pass_messages": forced.published,
        "full_over_incremental": round(t_forced / t_change, 1),
        "no_change_s_median": round(t_quiet, 3),
        "no_change_s_samples": [round(t, 3) for t in quiet],
        "no_change_messages": quiet_sent,
        "load_average_at_start": round(load, 2),
    }
    affected = ", ".join(str(a) for _, a in sent)
    markdown = f"""\
{n_devices:,} devices: {sites} sites x {lines} lines x {cameras} camera(s), {per_site} devices per site.

| step | wall time | MQTT messages |
|---|---|---|
| load + validate the commit (git objects, {n_devices} devices), timed apart | {t_load:.2f} s | - |
| compile {n_devices} desired states, timed apart | {t_compile:.2f} s | - |
| sign {n_devices} documents (Ed25519), timed apart | {t_sign:.2f} s | - |
| first publish (full pass): load, compile, sign, read the retained state, publish, all PUBACKs | {t_publish:.2f} s | {first.published} |
| first publish start → all {n_devices} devices Synced in `reconciler.service.fleetstatus` | **{t_synced:.2f} s** | {first.published} + {synced} reported |
| one line changed, incremental (load to last PUBACK), median of {REPEAT} | **{t_change:.3f} s** | {", ".join(str(m) for m, _ in sent)} (devices serving the line: {affected}) |
| one line changed, `--full` | {t_forced:.2f} s ({t_forced / t_change:.0f}x) | {forced.published} |
| nothing changed, median of {REPEAT} | **{t_quiet:.3f} s** | {quiet_sent} |

Samples: one-line change {", ".join(f"{t:.3f}" for t in changes)} s; nothing changed
{", ".join(f"{t:.3f}" for t in quiet)} s.

Devices are simulated by one MQTT client in a separate process that answers each desired
state with a reported state applying it; a watcher in the publishing process feeds the
reported states to `reconciler.service.fleetstatus.fleet_status` and stops the clock when every
device is Synced. The incremental pass reads the broker's publish marker, `git diff-tree`s the
published commit against the new one, reads and checks only the files the change needs,
compiles, signs and reads back only the devices serving the changed line
(`docs/reconciler.md`). Load average when the run started: {load:.1f} on {os.cpu_count()} cores
(other work on the machine shares them: treat single runs as indicative).
"""  # noqa: E501
    flag = " --small" if size == "small" else ""
    print(
        json.dumps(
            {
                "benchmark": "publish",
                "title": f"linefleet publish: {n_devices:,} devices on local Mosquitto",
                "command": f"python bench/bench_publish.py{flag}",
                "target": f"publish to all devices Synced under {TARGET_SYNCED_S:g} s; a "
                f"one-line change and a publish with nothing changed under "
                f"{TARGET_CHANGE_S:g} s, sending only the affected devices' documents",
                "met": met,
                "results": results,
                "markdown": markdown,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
