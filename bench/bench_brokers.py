"""Benchmark: the same publish → all devices Synced on each MQTT engine, in one run.

Set-up (not timed): one generated fleet (`linefleet fleet generate`, 20 sites x 50 lines x 2
cameras, 50 devices per site: 1,000 devices), committed to git; per engine a fresh broker on
free loopback ports, as the tests start them (tests/support/brokers.py):
- Mosquitto 2 (the generated `linefleet broker config`, anonymous loopback form);
- a three-node NATS 2.9 cluster (JetStream, MQTT streams and consumers replicated 3 times):
  `publish` is given every node and connects to node 0, the simulated devices are on node 1
  and the status watcher on node 2, so every message crosses the cluster;
- one RabbitMQ 3.10 node with `rabbitmq_mqtt`.
The devices are bench_publish's: one MQTT client in another process answering each desired
state with a reported state that applies it; a watcher feeds the reports to
`reconciler.service.fleetstatus`.

Timed: `reconciler.service.publish.publish()` of the whole fleet (load + validate, compile,
sign, read the retained state, publish, every PUBACK), and from its start until all devices
are Synced. On RabbitMQ (retained messages are handed only to exact-topic subscriptions)
`publish()` reads the retained state by exact topic, one filter per device
(docs/protocol.md, section 14). A broker linefleet refuses would be shown with the refusal
instead of a time.

Usage: python bench/bench_brokers.py [--small]   (--small: 3 sites x 10 devices, for a check)
Prints the JSON result for bench/run.py on stdout; progress on stderr.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_publish import Watcher, commit_all, log, simulate_devices  # noqa: E402

SIZES = {"full": (20, 50, 2, 50), "small": (3, 10, 1, 10)}  # sites, lines, cameras, devices
ENGINES = ("mosquitto", "nats-cluster", "rabbitmq")
LOAD_AT_START = os.getloadavg()[0]


@contextlib.contextmanager
def running(engine: str, workdir: Path) -> Iterator[tuple[str, tuple[str, int], tuple[str, int]]]:
    """The engine started: (publish URL, devices' host:port, watcher's host:port)."""
    from tests.support import nats, rabbitmq
    from tests.support.mosquitto import Mosquitto

    server: Any
    if engine == "mosquitto":
        server = Mosquitto(workdir / "mosquitto")
    elif engine == "nats-cluster":
        server = nats.NatsCluster(workdir / "nats")
    else:
        server = rabbitmq.RabbitMQ(workdir / "rabbitmq")
    server.start()
    try:
        if engine == "nats-cluster":
            one, two = server.nodes[1], server.nodes[2]
            yield server.url, (one.host, one.port), (two.host, two.port)
        else:
            yield server.url, (server.host, server.port), (server.host, server.port)
    finally:
        server.stop()


def unavailable(engine: str) -> str:
    from tests.support.brokers import unavailable as why

    return why(engine)


def measure(engine: str, repo: Path, workdir: Path) -> dict[str, Any]:
    from linefleet_core.errors import LinefleetError
    from linefleet_core.mqtturl import BrokerAddress
    from linefleet_core.signing import SigningKey
    from reconciler.service.compile import compile_fleet
    from reconciler.service.publish import load_revision, publish
    from reconciler.service.statusread import read_snapshot

    if reason := unavailable(engine):
        return {"engine": engine, "skipped": reason}
    key = SigningKey.generate()
    base = repo.resolve().as_uri()
    t_start = time.perf_counter()
    with running(engine, workdir) as (url, (dhost, dport), (whost, wport)):
        t_up = time.perf_counter() - t_start
        ready = multiprocessing.Event()
        devices = multiprocessing.Process(
            target=simulate_devices, args=(dhost, dport, ready), daemon=True
        )
        devices.start()
        ready.wait(30)
        watcher = Watcher(whost, wport)
        try:
            revision = load_revision(repo, "HEAD")
            docs = compile_fleet(revision.spec, revision.commit, revision.generation, base)
            desired = {f"{d.site}/{d.device}": d for d in docs.values()}
            log(f"{engine}: publishing {len(desired)} documents ...")
            t0 = time.perf_counter()
            try:
                result = publish(load_revision(repo, "HEAD"), BrokerAddress.parse(url), key, base)
            except LinefleetError as exc:
                return {"engine": engine, "start_s": round(t_up, 1), "refused": str(exc)}
            t_publish = time.perf_counter() - t0
            while watcher.synced(desired) < len(desired) and time.perf_counter() - t0 < 120:
                time.sleep(0.05)
            t_synced = time.perf_counter() - t0
            synced = watcher.synced(desired)
            # `linefleet status`'s read: desired, reported and online of every device
            known = {(d.site, d.device) for d in docs.values()}
            t1 = time.perf_counter()
            snapshot = read_snapshot(BrokerAddress.parse(f"mqtt://{whost}:{wport}"), devices=known)
            t_status = time.perf_counter() - t1
        finally:
            watcher.close()
            devices.terminate()
            devices.join(10)
    log(f"{engine}: {result.published} published in {t_publish:.2f}s, {synced} Synced")
    return {
        "engine": engine,
        "start_s": round(t_up, 1),
        "devices": len(desired),
        "published": result.published,
        "publish_s": round(t_publish, 3),
        "publish_to_all_synced_s": round(t_synced, 3),
        "synced": synced,
        "status_read_s": round(t_status, 3),
        "status_read_messages": len(snapshot),
        "read_by": "exact topic" if snapshot.exact else "wildcard",
    }


def row(r: dict[str, Any], reference: float | None) -> str:
    names = {
        "mosquitto": "Mosquitto 2.0 (one broker)",
        "nats-cluster": "NATS 2.9, 3-node cluster, replicas 3",
        "rabbitmq": "RabbitMQ 3.10, rabbitmq_mqtt (one node)",
    }
    name = names[r["engine"]]
    if "skipped" in r:
        return f"| {name} | not run: {r['skipped']} | | | | |"
    if "refused" in r:
        why = r["refused"].split(" (")[0]  # "broker mqtt://… does not deliver retained …"
        return f"| {name} | refused by linefleet: {why} | | | | {r['start_s']:.0f} s |"
    ratio = "" if not reference else f"{r['publish_to_all_synced_s'] / reference:.1f}x"
    return (
        f"| {name} | {r['publish_s']:.2f} s | {r['publish_to_all_synced_s']:.2f} s "
        f"({r['synced']}/{r['devices']}) | {ratio} | {r['status_read_s']:.2f} s "
        f"({r['status_read_messages']} messages, by {r['read_by']}) | {r['start_s']:.0f} s |"
    )


def main(argv: list[str]) -> int:
    import json

    size = "small" if "--small" in argv else "full"
    sites, lines, cameras, per_site = SIZES[size]
    with tempfile.TemporaryDirectory(prefix="linefleet-bench-brokers-") as tmp:
        repo = Path(tmp) / "fleet-repo"
        generate = [
            sys.executable, "-m", "linefleet", "fleet", "generate", "--out", str(repo),
            "--sites", str(sites), "--lines-per-site", str(lines),
            "--cameras-per-line", str(cameras), "--devices-per-site", str(per_site),
        ]  # fmt: skip
        log(f"generating {sites * per_site} devices ...")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        subprocess.run(generate, check=True, stdout=subprocess.DEVNULL, env=env)
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
        for k, v in (("user.name", "bench"), ("user.email", "bench@linefleet.invalid")):
            subprocess.run(["git", "config", k, v], cwd=repo, check=True)
        commit_all(repo, "generated fleet")
        runs = [measure(e, repo, Path(tmp) / e) for e in ENGINES]
    by = {r["engine"]: r for r in runs}
    reference = by["mosquitto"].get("publish_to_all_synced_s")
    devices = sites * per_site
    table = "\n".join(row(r, reference) for r in runs)
    markdown = f"""\
| broker | `publish()` (load → every PUBACK) | publish start → all Synced | vs Mosquitto | status read | broker start |
|---|---|---|---|---|---|
{table}

One fleet of {devices} devices, published once to a fresh broker of each engine in the same
run. On the NATS cluster, `publish` connects to node 0 (its URL lists all three), the
simulated devices to node 1 and the status watcher to node 2. RabbitMQ's MQTT plugin keeps
retained messages but hands them only to exact-topic subscriptions: `publish` finds that out
with its retained probe and reads the broker by exact topic, {devices} filters plus its
marker (docs/protocol.md, section 14). "status read" is `linefleet status`'s read of the
retained state once all are Synced (`statusread.read_snapshot`, QoS 0: every device's
`desired`, `reported` and `online`; on RabbitMQ {3 * devices} exact-topic filters, on node 2
of the NATS cluster). Load average when the run
started: {LOAD_AT_START:.1f} on {os.cpu_count()} cores (the machine is shared: single runs are
indicative).
"""  # noqa: E501
    nats = by["nats-cluster"]
    print(
        json.dumps(
            {
                "benchmark": "brokers",
                "title": f"publish → all Synced on each MQTT engine ({devices} devices)",
                "command": "python bench/bench_brokers.py"
                + (" --small" if size == "small" else ""),
                "target": "the NATS cluster's and RabbitMQ's figures beside Mosquitto's, in "
                "one run",
                "met": bool(
                    reference
                    and nats.get("synced") == devices
                    and by["rabbitmq"].get("synced") == devices
                ),
                "results": {"runs": runs, "load_average_at_start": round(LOAD_AT_START, 2)},
                "markdown": markdown,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
