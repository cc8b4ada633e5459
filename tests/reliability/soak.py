"""The soak: a compressed production day for a simulated fleet, with faults, and its figures.

    python -m tests.reliability.soak --devices 200 --edges 4 --cycles 2 \
        --write-doc docs/reliability.md          # what `make soak` runs

One real Mosquitto. `--edges` real `linefleet edge run` processes (ONNX, outbox, SQLite state;
each behind a cuttable TCP proxy) and `--devices` lightweight protocol clients
(`simdevice.SimDevice`). A publisher signs and publishes each step of `fleetdocs.DAY` to every
device; between steps the harness injects faults: the broker restarted, devices SIGKILLed and
restarted while a publish happens, devices offline for a "shift" while the fleet moves on, a
disk filled while a new model must be downloaded. After each fault it measures the time until
every device reports the newest desired state applied. At the end every device must have
converged; every event (and, for simulated devices, every report) must have reached the
consumer exactly once and in order; no device may ever have been without a loadable model.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from linefleet_core.signing import SigningKey
from tests.reliability import fleetdocs
from tests.reliability.consumer import Consumer
from tests.reliability.faults import EdgeProcess, TcpProxy
from tests.reliability.simdevice import SimDevice
from tests.support.mosquitto import Mosquitto
from tests.support.waiting import until

SITES = ("plant-a", "plant-b")


@dataclass
class Config:
    devices: int = 200
    edges: int = 4
    cycles: int = 1
    heartbeat: float = 5.0
    event_every: float = 4.0
    shift_seconds: float = 20.0
    fault_fraction: float = 0.1
    converge_timeout: float = 180.0
    frame_interval: float = 0.5
    disk_fault_on_edges: bool = True
    bridged_site: bool = True  # plant-b's devices use a site broker bridged to the central one
    seed: int = 7


@dataclass
class Fault:
    kind: str
    detail: str
    devices: int
    reconverge_seconds: float | None = None
    others_seconds: float | None = None  # the unaffected devices, during the fault
    others_measured: bool = False


@dataclass
class Result:
    config: Config
    started: str = ""
    duration_seconds: float = 0.0
    generations: int = 0
    faults: list[Fault] = field(default_factory=list)
    publishes: list[dict[str, Any]] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)
    received: dict[str, int] = field(default_factory=dict)
    lost: dict[str, int] = field(default_factory=dict)
    redelivered: dict[str, int] = field(default_factory=dict)
    duplicates_to_consumers: int = 0
    out_of_order_to_consumers: int = 0
    not_converged: list[str] = field(default_factory=list)
    without_model: dict[str, int] = field(default_factory=dict)
    edge_decisions: int = 0
    edge_frames: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    loss_detail: list[str] = field(default_factory=list)
    load_average: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def ok(self) -> bool:
        return not (
            any(self.lost.values())
            or self.duplicates_to_consumers
            or self.out_of_order_to_consumers
            or self.not_converged
            or any(self.without_model.values())
            or any(f.reconverge_seconds is None for f in self.faults)
            or any(f.others_measured and f.others_seconds is None for f in self.faults)
        )


class Soak:
    def __init__(self, config: Config, workdir: Path) -> None:
        self.cfg = config
        self.workdir = workdir
        self.rng = random.Random(config.seed)
        self.key = SigningKey.generate()
        _, pub = self.key.write(workdir / "keys")
        self.trust = pub
        self.models = fleetdocs.build_artifacts(workdir / "artifacts")
        self.broker = Mosquitto(workdir / "broker").start()
        self.site_broker: Mosquitto | None = None
        self.uplink: TcpProxy | None = None
        if config.bridged_site:
            self.uplink = TcpProxy(self.broker.port)  # the plant's uplink, cuttable
            self.site_broker = Mosquitto(
                workdir / "site-broker", extra_config=site_bridge(SITES[1], self.uplink.port)
            ).start()
        self.generation = 0
        self.expected: dict[str, str] = {}
        self.result = Result(config)
        self.sims: list[SimDevice] = []
        self.edges: list[EdgeProcess] = []
        self.proxies: dict[str, TcpProxy] = {}
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self.frames_on = False
        self.desired_sent = 0
        keys = {self.key.key_id: self.key.public}
        for i in range(config.devices):
            site = SITES[i % len(SITES)]
            local = self.site_broker if site == SITES[1] and self.site_broker else self.broker
            self.sims.append(
                SimDevice(
                    site,
                    f"sim-{i + 1:04d}",
                    local.host,
                    local.port,
                    keys,
                    config.heartbeat,
                    config.event_every,
                    seed=config.seed * 100_003 + i,
                )
            )
        for i in range(config.edges):
            name = f"edge-{i + 1:02d}"
            proxy = TcpProxy(self.broker.port)
            self.proxies[name] = proxy
            self.edges.append(
                EdgeProcess(
                    SITES[0],
                    name,
                    workdir / name,
                    f"mqtt://127.0.0.1:{proxy.port}",
                    self.trust,
                    artifact_root=workdir / "artifacts",  # where `build_artifacts` writes
                )
            )
        self.consumer = Consumer(self.broker.host, self.broker.port)

    # --- plumbing -------------------------------------------------------------------------

    def keys(self) -> list[tuple[str, str]]:
        return [(s.site, s.device) for s in self.sims] + [(e.site, e.device) for e in self.edges]

    def _tick_loop(self) -> None:
        next_frame = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            for sim in self.sims:
                sim.tick(now)
            if self.frames_on and now >= next_frame:
                for edge in self.edges:
                    edge.show_frame()  # frames keep coming, even to a dead device
                next_frame = now + self.cfg.frame_interval
            self._stop.wait(0.05)

    def publish(self, step: fleetdocs.Step) -> float:
        """Sign and publish `step` for every device (retained, QoS 1); return when all PUBACKed."""
        self.generation += 1
        started = time.monotonic()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"soak-pub-{uuid.uuid4().hex}")
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        client.connect(self.broker.host, self.broker.port)
        client.loop_start()
        try:
            infos = []
            for site, device in self.keys():
                payload, digest = fleetdocs.desired(
                    self.key,
                    site,
                    device,
                    self.generation,
                    step,
                    self.models,
                    int(self.cfg.heartbeat),
                )
                self.expected[f"{site}/{device}"] = digest
                topic = f"linefleet/v1/{site}/{device}/desired"
                infos.append(client.publish(topic, payload, qos=1, retain=True))
            for info in infos:
                info.wait_for_publish(30)
            self.desired_sent += len(infos)
        finally:
            client.disconnect()
            client.loop_stop()
        self.result.publishes.append(
            {"generation": self.generation, "step": step.name, "devices": len(self.expected)}
        )
        return time.monotonic() - started

    def wait_converged(self, since: float, keys: list[str] | None = None) -> float | None:
        """Seconds from `since` until every device (or `keys`) applied its expected state."""
        wanted = {k: self.expected[k] for k in (keys or self.expected)}
        if until(lambda: not self.consumer.converged(wanted), self.cfg.converge_timeout, 0.1):
            return round(time.monotonic() - since, 2)
        return None

    def _pick(self, fraction: float) -> list[SimDevice]:
        n = max(1, round(len(self.sims) * fraction))
        return self.rng.sample(self.sims, min(n, len(self.sims)))

    def _fault(
        self, kind: str, detail: str, devices: int, since: float, others: float | None = None
    ) -> Fault:
        fault = Fault(kind, detail, devices, self.wait_converged(since))
        if kind in ("offline-shift", "disk-full", "bridge-cut"):
            fault.others_seconds, fault.others_measured = others, True
        self.result.faults.append(fault)
        print(f"  {kind}: {detail} -> reconverged in {fault.reconverge_seconds}s", flush=True)
        return fault

    # --- the day --------------------------------------------------------------------------

    def run(self) -> Result:
        self.result.started = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
        t0 = time.monotonic()
        for sim in self.sims:
            sim.start()
        for edge in self.edges:
            edge.start()
        self._ticker = threading.Thread(target=self._tick_loop, daemon=True, name="ticker")
        self._ticker.start()
        try:
            for cycle in range(self.cfg.cycles):
                self._cycle(cycle)
            self._drain()
        finally:
            self._stop.set()
            self._ticker.join(10)
            self._shutdown()
        self.result.duration_seconds = round(time.monotonic() - t0, 1)
        self.result.generations = self.generation
        self._account()
        return self.result

    def _step(self, index: int) -> fleetdocs.Step:
        return fleetdocs.DAY[index % len(fleetdocs.DAY)]

    def _cycle(self, cycle: int) -> None:
        day = fleetdocs.DAY
        print(f"cycle {cycle + 1}/{self.cfg.cycles}", flush=True)
        since = time.monotonic()
        self.publish(day[0])
        self._fault("publish", day[0].name, len(self.expected), since)
        self.frames_on = True

        if self.uplink is None:
            since = time.monotonic()
            self.publish(day[1])
            self._fault("publish", day[1].name, len(self.expected), since)
        else:  # 0. The plant's uplink is cut: its site broker keeps serving its devices.
            self.uplink.cut()
            self.publish(day[1])
            cut_off = [k for k in self.expected if k.startswith(f"{SITES[1]}/")]
            rest = [k for k in self.expected if k not in cut_off]
            others = self.wait_converged(time.monotonic(), rest)
            time.sleep(self.cfg.shift_seconds / 2)
            if not self.consumer.converged({k: self.expected[k] for k in cut_off}):
                raise AssertionError(f"{SITES[1]} converged through a cut bridge")
            since = time.monotonic()
            self.uplink.restore()
            self._fault(
                "bridge-cut",
                f"{SITES[1]} uplink cut {self.cfg.shift_seconds / 2:.0f} s while "
                f"'{day[1].name}' was published",
                len(cut_off),
                since,
                others,
            )

        # 1. The broker restarts (clean stop: persistence saved), then a publish lands.
        self.broker.stop()
        time.sleep(2.0)
        self.broker.start()
        since = time.monotonic()
        self.publish(day[2])
        detail = f"central broker down 2 s, then '{day[2].name}'"
        self._fault("broker-restart", detail, len(self.expected), since)

        # 2. Power cuts: real edges and some simulated devices SIGKILLed; a publish meanwhile.
        victims = self._pick(self.cfg.fault_fraction)
        for sim in victims:
            sim.kill()
        for edge in self.edges:
            edge.kill()
        self.publish(day[3])
        time.sleep(2.0)
        since = time.monotonic()
        for sim in victims:
            sim.start()
        for edge in self.edges:
            edge.start()
        detail = f"{len(self.edges)} edge processes SIGKILL + {len(victims)} simulated"
        self._fault(
            "sigkill-restart",
            f"{detail}; '{day[3].name}' published while down",
            len(self.edges) + len(victims),
            since,
        )

        # 3. A shift offline: the link is cut, the fleet moves on, the device keeps working.
        offline = self._pick(self.cfg.fault_fraction)
        for sim in offline:
            sim.kill()
        for proxy in self.proxies.values():
            proxy.cut()
        self.publish(day[4])
        online = [k for k in self.expected if k not in {f"{s.site}/{s.device}" for s in offline}]
        online = [k for k in online if not k.split("/")[1].startswith("edge-")]
        others = self.wait_converged(time.monotonic(), online)
        time.sleep(self.cfg.shift_seconds)
        since = time.monotonic()
        for sim in offline:
            sim.start()
        for proxy in self.proxies.values():
            proxy.restore()
        self._fault(
            "offline-shift",
            f"{len(self.edges)} edges + {len(offline)} simulated offline "
            f"{self.cfg.shift_seconds:.0f} s while '{day[4].name}' was published",
            len(self.edges) + len(offline),
            since,
            others,
        )

        # 4. A full disk while a new model must be downloaded.
        full = self._pick(self.cfg.fault_fraction)
        for sim in full:
            with sim.lock:
                sim.disk.disk_full = True
        disk_edges = self.edges if self.cfg.disk_fault_on_edges else []
        for edge in disk_edges:
            edge.fill_disk()
        self.publish(day[5])
        rest = [k for k in self.expected if k not in {f"{s.site}/{s.device}" for s in full}]
        rest = [k for k in rest if k not in {f"{e.site}/{e.device}" for e in disk_edges}]
        others = self.wait_converged(time.monotonic(), rest)
        time.sleep(2.0)
        stuck = [f"{s.site}/{s.device}" for s in full] + [
            f"{e.site}/{e.device}" for e in disk_edges
        ]
        wrongly = [k for k in stuck if not self.consumer.converged({k: self.expected[k]})]
        if wrongly:
            raise AssertionError(f"converged despite a full disk: {wrongly}")
        since = time.monotonic()
        for sim in full:
            with sim.lock:
                sim.disk.disk_full = False
        for edge in disk_edges:
            edge.free_disk()
        self._fault(
            "disk-full",
            f"{len(disk_edges)} edges + {len(full)} simulated could not store '{day[5].name}'",
            len(disk_edges) + len(full),
            since,
            others,
        )

        since = time.monotonic()
        self.publish(day[6])
        self._fault("publish", day[6].name, len(self.expected), since)

    def _drain(self, timeout: float = 60.0) -> None:
        """Stop producing; wait until every simulated outbox is empty and deliveries settle."""
        self.frames_on = False
        for sim in self.sims:
            sim.event_every = 0.0
            sim.heartbeat = 1e9
        until(lambda: all(not s.disk.outbox for s in self.sims), timeout, 0.2)
        for edge in self.edges:
            edge.stop()  # SIGTERM: a last report, `online: false`, outbox flushed when connected
        time.sleep(1.0)
        settled, last = time.monotonic(), -1
        deadline = time.monotonic() + 30.0  # its own bound: a slow drain above must not skip it
        while time.monotonic() - settled < 2.0 and time.monotonic() < deadline:
            total = sum(self.consumer.audit.deliveries.values())
            if total != last:
                settled, last = time.monotonic(), total
            time.sleep(0.2)

    def _shutdown(self) -> None:
        for edge in self.edges:
            edge.kill()
        for sim in self.sims:
            sim.stop()
        for proxy in self.proxies.values():
            proxy.close()
        self.consumer.close()
        if self.site_broker is not None:
            self.site_broker.stop()
        if self.uplink is not None:
            self.uplink.close()
        self.broker.stop()

    # --- the figures ----------------------------------------------------------------------

    def _account(self) -> None:
        r, audit = self.result, self.consumer.audit
        issued_events = {f"{s.site}/{s.device}": s.counters.events for s in self.sims}
        issued_events |= {f"{e.site}/{e.device}": e.events_issued() for e in self.edges}
        issued_reports = {f"{s.site}/{s.device}": s.counters.reports for s in self.sims}
        lost_events = lost_reports = dups = disorder = 0
        queued = {  # an event still in a real edge's outbox was not lost, only not yet sent
            f"{e.site}/{e.device}": f" ({n} events still queued in its outbox)"
            for e in self.edges
            if (n := e.events_queued())
        }
        for key, n in issued_events.items():
            got = audit.events_delivered.get(key, [])
            missing = sorted(set(range(1, n + 1)) - set(got))
            lost_events += len(missing)
            for seq in missing[:3]:
                raw = audit.raw_events.get(key, [])
                at = next((i for i, s in enumerate(raw) if s > seq), len(raw))
                r.loss_detail.append(
                    f"{key} event seq {seq} of {n} never handed on; arrivals around it: "
                    f"{raw[max(0, at - 4) : at + 4]}{queued.get(key, '')}"
                )
            dups += len(got) - len(set(got))
            disorder += sum(1 for a, b in itertools.pairwise(got) if b <= a)
        for key, n in issued_reports.items():
            got = audit.reports_delivered.get(key, [])
            missing = sorted(set(range(1, n + 1)) - set(got))
            lost_reports += len(missing)
            for seq in missing[:3]:
                raw_reports = audit.raw_reports.get(key, [])
                at = next((i for i, (s, _) in enumerate(raw_reports) if s > seq), len(raw_reports))
                r.loss_detail.append(
                    f"{key} report_seq {seq} never handed on; arrivals (seq, retained) "
                    f"around it: {raw_reports[max(0, at - 4) : at + 4]}"
                )
            dups += len(got) - len(set(got))
            disorder += sum(1 for a, b in itertools.pairwise(got) if b <= a)
        r.sent = {
            "desired (retained)": self.desired_sent,
            "events": sum(issued_events.values()),
            "reports (simulated devices)": sum(issued_reports.values()),
            "resent after a kill (simulated)": sum(s.counters.resent for s in self.sims),
        }
        r.received = dict(sorted(audit.deliveries.items()))
        r.received["events handed to consumers"] = sum(
            len(v) for v in audit.events_delivered.values()
        )
        r.received["reports handed to consumers (simulated)"] = sum(
            len(v) for v in audit.reports_delivered.values()
        )
        r.lost = {"events": lost_events, "reports (simulated devices)": lost_reports}
        r.redelivered = {
            "events dropped by seq": audit.event_redeliveries,
            "reports dropped by report_seq": audit.report_redeliveries,
            "retained replays on reconnect": audit.retained_replays,
        }
        r.duplicates_to_consumers = dups
        r.out_of_order_to_consumers = disorder
        r.not_converged = self.consumer.converged(self.expected)
        r.without_model = {f"{s.site}/{s.device}": s.counters.without_model for s in self.sims}
        r.without_model = {k: v for k, v in r.without_model.items() if v}
        r.rejected = dict(audit.rejected)
        for edge in self.edges:
            rows = edge.decisions()
            r.edge_decisions += len(rows)
            r.edge_frames += edge.frames_written
            bad = sum(1 for row in rows if not row.get("model") or row.get("error"))
            if bad:
                r.without_model[f"{edge.site}/{edge.device}"] = bad
        r.load_average = tuple(round(x, 2) for x in _loadavg())  # type: ignore[assignment]


def site_bridge(site: str, central_port: int) -> str:
    """The site broker's bridge exactly as `linefleet broker config --site` generates it
    (`reconciler.broker.bridge_lines`): desired in; reported, events, online, frames out;
    QoS 1; `cleansession false`. The central broker here is anonymous, so any password works."""
    from reconciler.broker import Bridge, bridge_lines

    bridge = Bridge(site, "127.0.0.1", central_port, f"linefleet-bridge-{site}", "soak")
    return "\n".join(bridge_lines(bridge)) + "\n"


def _loadavg() -> tuple[float, float, float]:
    import os

    return os.getloadavg()


# --- report -------------------------------------------------------------------------------

BEGIN, END = "<!-- soak:begin -->", "<!-- soak:end -->"


def render(result: Result, command: str) -> str:
    c = result.config
    faults = Counter(f.kind for f in result.faults)
    rows = [
        f"- Command: `{command}`",
        f"- Started {result.started} (machine clock), ran {result.duration_seconds:.0f} s; "
        f"load average at the end {result.load_average[0]} (2 cores)",
        f"- Devices: {c.devices + c.edges} = {c.edges} real `linefleet edge run` processes "
        f"+ {c.devices} simulated protocol clients, 2 sites; "
        + (
            "a central Mosquitto and plant-b's site broker bridged to it"
            if c.bridged_site
            else "1 Mosquitto"
        ),
        f"- {result.generations} generations published ({c.cycles} x the "
        f"{len(fleetdocs.DAY)}-step day: rollout, shadow, canary, promotion, rollback, new model)",
        "- Faults by kind: " + ", ".join(f"{k} x{n}" for k, n in sorted(faults.items())),
        f"- Verdict: **{'PASS' if result.ok else 'FAIL'}**",
        "",
        "| fault | what | devices hit | rest of fleet converged during it (s) "
        "| all reconverged after (s) |",
        "|---|---|---:|---:|---:|",
    ]
    rows += [
        f"| {f.kind} | {f.detail} | {f.devices} | {_seconds(f.others_seconds, f.others_measured)} | "
        f"{_seconds(f.reconverge_seconds, True)} |"
        for f in result.faults
    ]
    rows += ["", "| messages | count |", "|---|---:|"]
    rows += [f"| sent: {k} | {v} |" for k, v in result.sent.items()]
    rows += [f"| received: {k} | {v} |" for k, v in result.received.items()]
    rows += [f"| lost: {k} | {v} |" for k, v in result.lost.items()]
    rows += [
        f"| redelivered by MQTT, dropped by de-duplication: {k} | {v} |"
        for k, v in result.redelivered.items()
    ]
    rows += [
        f"| duplicates delivered to consumers | {result.duplicates_to_consumers} |",
        f"| out of order delivered to consumers | {result.out_of_order_to_consumers} |",
        f"| devices not converged at the end | {len(result.not_converged)} |",
        f"| devices ever without a loadable model | {len(result.without_model)} |",
        f"| real-edge frames written / decisions recorded | "
        f"{result.edge_frames} / {result.edge_decisions} |",
    ]
    if result.loss_detail:
        rows += ["", "Losses in detail:", ""] + [f"- {line}" for line in result.loss_detail]
    return "\n".join(rows)


def _seconds(value: float | None, measured: bool) -> str:
    if not measured:
        return "-"
    return "never" if value is None else f"{value}"


def write_doc(path: Path, text: str) -> None:
    doc = path.read_text(encoding="utf-8") if path.exists() else f"{BEGIN}\n{END}\n"
    if BEGIN not in doc:
        doc += f"\n{BEGIN}\n{END}\n"
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    path.write_text(pattern.sub(lambda _: f"{BEGIN}\n{text}\n{END}", doc), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--devices", type=int, default=200, help="simulated protocol clients")
    p.add_argument("--edges", type=int, default=4, help="real `linefleet edge run` processes")
    p.add_argument("--cycles", type=int, default=1, help="how many production days")
    p.add_argument("--shift", type=float, default=20.0, help="seconds offline for the shift")
    p.add_argument("--heartbeat", type=float, default=5.0)
    p.add_argument("--workdir", type=Path, help="keep the run's files here (default: a temp dir)")
    p.add_argument("--json", type=Path, help="write the figures as JSON")
    p.add_argument("--write-doc", type=Path, help="replace the figures in this markdown file")
    ns = p.parse_args(argv)
    config = Config(
        devices=ns.devices,
        edges=ns.edges,
        cycles=ns.cycles,
        shift_seconds=ns.shift,
        heartbeat=ns.heartbeat,
    )
    work = ns.workdir or Path(tempfile.mkdtemp(prefix="linefleet-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        result = Soak(config, work).run()
    finally:
        if ns.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    command = "python -m tests.reliability.soak " + " ".join(argv or sys.argv[1:])
    text = render(result, command)
    print(text)
    if ns.json:
        ns.json.write_text(json.dumps(asdict(result), indent=2, default=str))
    if ns.write_doc:
        write_doc(ns.write_doc, text)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
