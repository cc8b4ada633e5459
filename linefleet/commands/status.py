"""`linefleet status`: desired vs reported per site, line and device, with conditions."""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from linefleet_core.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from reconciler.status import DeviceStatus, FleetStatus, LineRow


@dataclass(frozen=True)
class StatusArgs:
    broker: str
    repo: Path | None
    state_dir: Path | None
    format: str
    quiet: float
    wait: float | None = None
    device_keys: Path | None = None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "status",
        help="show each device's condition: Synced, Progressing, Degraded, Failed, Stale",
        description=(
            "Read the desired, reported and online state the broker retains (and, with "
            "--state-dir, what `linefleet reconcile` recorded: events, rejected messages). "
            "A device not heard from within 3 heartbeats is Stale, never Synced. Exit 0, or "
            "4 when the broker is unreachable. With --wait SECONDS (for CI after a publish): "
            "re-read until every device is Synced, exit 1 if one is not when time runs out."
        ),
    )
    p.add_argument("--broker", required=True, help="mqtt://HOST:PORT or mqtts://HOST:PORT")
    p.add_argument("--repo", type=Path, help="fleet repository: flags devices not in the fleet")
    p.add_argument("--state-dir", type=Path, help="state directory of `linefleet reconcile`")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument(
        "--device-keys",
        type=Path,
        metavar="DIR",
        help="<device-id>.pub files: those devices' reports must carry their signature",
    )
    p.add_argument(
        "--quiet", type=float, default=0.5, help="seconds without a retained message = done"
    )
    p.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        help="wait until every device is Synced (0: check once); exit 1 if not in time",
    )
    p.set_defaults(run=run)


def collect(args: StatusArgs) -> tuple[FleetStatus, float]:
    from linefleet_core import spec as fleetspec
    from linefleet_core.mqtturl import BrokerAddress
    from linefleet_core.signing import load_device_keys
    from linefleet_core.wire import Channel, DesiredState, topic_filter
    from reconciler.mqtt import retained_snapshot
    from reconciler.observed import Accepted, Observations, classify
    from reconciler.status import fleet_status
    from reconciler.store import DB_NAME, Store

    address = BrokerAddress.parse(args.broker)
    fleet: set[str] | None = None
    assigned: dict[str, frozenset[str]] | None = None
    if args.repo is not None:
        if not args.repo.is_dir():
            raise UsageError(f"--repo {args.repo}: no such directory")
        spec, _ = fleetspec.load(fleetspec.DirectorySource(args.repo))
        fleet = {f"{d.site}/{d.id}" for d in spec.devices.values()}
        assigned = fleetspec.assigned_lines(spec)
    observations = Observations()
    recorded: dict[str, str] = {}
    if args.state_dir is not None:
        if not (args.state_dir / DB_NAME).is_file():
            raise UsageError(f"--state-dir {args.state_dir}: no {DB_NAME} (run reconcile first)")
        store = Store(args.state_dir)
        observations = store.load()
        recorded = store.meta()
        store.close()
    keys = None if args.device_keys is None else load_device_keys(args.device_keys)
    filters = [topic_filter(c) for c in (Channel.DESIRED, Channel.REPORTED, Channel.ONLINE)]
    client = f"linefleet-status-{uuid.uuid4().hex[:12]}"
    snapshot = retained_snapshot(address, filters, client, quiet=args.quiet)
    now = time.time()
    known = None if fleet is None else {(k.partition("/")[0], k.partition("/")[2]) for k in fleet}
    desired: dict[str, DesiredState] = {}
    for name, msg in sorted(snapshot.items()):
        if name.endswith("/desired"):
            result = classify(name, msg.payload)
            if isinstance(result, Accepted) and isinstance(result.message, DesiredState):
                desired[f"{result.site}/{result.device}"] = result.message
            elif not isinstance(result, Accepted):
                observations.reject(result)
        else:
            observations.ingest(name, msg.payload, now, known, live=False, device_keys=keys)
    status = fleet_status(desired, observations, now, fleet, assigned)
    status.reconciler = recorded
    return status, now


def run(ns: argparse.Namespace) -> int:
    from reconciler.status import as_json

    args = StatusArgs(
        ns.broker, ns.repo, ns.state_dir, ns.format, ns.quiet, ns.wait, ns.device_keys
    )
    if args.wait is not None and args.wait < 0:
        raise UsageError("--wait must be 0 or more seconds")
    status, now = collect(args) if args.wait is None else wait_synced(args)
    if args.format == "json":
        json.dump(as_json(status, now), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(render_table(status, now))
    if args.wait is not None and not all_synced(status):
        print(f"not every device is Synced after {args.wait:g}s", file=sys.stderr)
        return int(ExitCode.INVALID)
    return int(ExitCode.OK)


def all_synced(status: FleetStatus) -> bool:
    """Every device Synced, and at least one device (an empty broker is not a rollout)."""
    return bool(status.devices) and all(d.condition.type.value == "Synced" for d in status.devices)


def wait_synced(args: StatusArgs, poll: float = 1.0) -> tuple[FleetStatus, float]:
    """Re-read the broker until every device is Synced or `args.wait` seconds have passed;
    say on stderr what is still outstanding whenever that changes."""
    deadline = time.monotonic() + (args.wait or 0.0)
    said = ""
    while True:
        status, now = collect(args)
        if all_synced(status) or time.monotonic() >= deadline:
            return status, now
        pending = [d for d in status.devices if d.condition.type.value != "Synced"]
        summary = ", ".join(f"{d.site}/{d.device} {d.condition.type.value}" for d in pending)
        line = f"waiting for {len(pending)} device(s): {summary or 'no devices yet'}"
        if line != said:
            print(line, file=sys.stderr, flush=True)
            said = line
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))


def _gen(dev: DeviceStatus) -> tuple[str, str]:
    desired = "-" if dev.desired is None else f"g{dev.desired.generation}"
    rep = None if dev.observation is None else dev.observation.reported
    applied = "-" if rep is None or rep.applied is None else f"g{rep.applied.generation}"
    return desired, applied


def _model(row: LineRow) -> str:
    got = None if row.reported is None else row.reported.serving
    want = row.desired_serving or "-"
    return want if got in (None, want) else f"{got} -> {want}"


def _candidate(row: LineRow) -> str:
    if row.desired_candidate is None:
        return "-"
    text = f"{row.desired_candidate} {row.stage}"
    metrics = row.metrics
    if metrics is not None:  # no shadow comparisons in the window: no value, not 0
        agreement = metrics.shadow_agreement
        text += f" agree={'-' if agreement is None else format(agreement, '.2f')}"
    if metrics is not None and row.stage == "canary":
        text += (
            f" err={metrics.candidate_error_rate:.3f} p95={metrics.candidate_latency_p95_ms:.0f}ms"
        )
    return text


def _seen(dev: DeviceStatus, now: float) -> str:
    if dev.last_seen is None:
        return "never"
    age = max(0.0, now - dev.last_seen)
    return f"{age:.0f}s ago" if age < 120 else f"{age / 60:.0f}m ago"


def _approved(dev: DeviceStatus) -> str:
    """Who approved the desired state's commit: a name (no e-mail), and the pull request."""
    approval = None if dev.desired is None else dev.desired.approval
    if approval is None:
        return "-"
    name = approval.by.split(" <")[0]
    return f"{name} (#{approval.pull})" if approval.pull else name


def render_table(status: FleetStatus, now: float) -> str:
    header: tuple[str, ...] = ("SITE", "DEVICE", "LINE", "CONDITION", "DESIRED", "APPLIED")
    header += ("MODEL", "CANDIDATE", "APPROVED BY")
    rows: list[tuple[str, ...]] = [(*header, "LAST SEEN")]
    for dev in status.devices:
        desired, applied = _gen(dev)
        name = dev.device if dev.in_fleet else f"{dev.device} (not in fleet)"
        for row in dev.lines or ():
            rows.append(
                (
                    dev.site,
                    name,
                    row.line,
                    dev.condition.type.value,
                    desired,
                    applied,
                    _model(row),
                    _candidate(row),
                    _approved(dev),
                    _seen(dev, now),
                )
            )
        if not dev.lines:
            cond = dev.condition.type.value
            rows.append(
                (dev.site, name, "-", cond, desired, applied, "-", "-", "-", _seen(dev, now))
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]]).rstrip()
        for r in rows
    ]
    notes = [
        f"{d.site}/{d.device}: {d.condition.type.value} ({d.condition.reason}): "
        f"{d.condition.message}"
        for d in status.devices
        if d.condition.type.value != "Synced"
    ]
    if notes:
        lines += ["", *notes]
    counts = ", ".join(f"{n} {c}" for c, n in status.counts().items() if n)
    lines += ["", f"{len(status.devices)} device(s): {counts or 'none'}"]
    rec = status.reconciler
    if rec:
        short = {
            k: (rec.get(k) or "-")[:12] for k in ("last_applied_commit", "last_attempted_commit")
        }
        lines.append(
            f"reconciler: applied {short['last_applied_commit']}, "
            f"attempted {short['last_attempted_commit']}"
        )
        if rec.get("stalled_commit") and rec.get("stalled_commit") == rec.get(
            "last_attempted_commit"
        ):
            lines.append(f"  stalled: {rec.get('stalled_message', '')}")
        if rec.get("last_error"):
            lines.append(f"  last error: {rec['last_error']}")
    if status.rejections:
        bad = ", ".join(f"{n} {r}" for r, n in sorted(status.rejections.items()))
        lines.append(f"rejected messages: {bad}")
        lines += [f"  last {r}: {status.last_rejection[r]}" for r in sorted(status.last_rejection)]
    return "\n".join(lines)
