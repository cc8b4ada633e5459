"""`linefleet status`: desired vs reported per site, line and device, with conditions."""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from linefleet.options import seconds
from linefleet_core.errors import ExitCode
from linefleet_core.gcpause import paused_gc
from linefleet_core.text import printable

if TYPE_CHECKING:
    from reconciler.service.fleetstatus import DeviceStatus, FleetStatus, LineRow
    from trainer.audits import FieldEscapes


@dataclass(frozen=True)
class StatusArgs:
    broker: str
    repo: Path | None
    state_dir: Path | None
    format: str
    quiet: float
    wait: float | None = None
    device_keys: Path | None = None
    edge_exports: tuple[Path, ...] = ()
    labels: str | None = None
    every: bool = False


SUMMARY_ABOVE = 200
"""Above this many devices the table summarises (counts per site and condition, then only the
devices that need a look); `--all` lists every device at any size."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "status",
        help="show each device's condition: Synced, Progressing, Degraded, Failed, Stale",
        description=(
            "Read the desired, reported and online state the broker retains (and, with "
            "--state-dir, what `linefleet reconcile` recorded: events, rejected messages). "
            "A device not heard from within 3 heartbeats is Stale, never Synced. Exit 0, or "
            "4 when the broker is unreachable. With --wait SECONDS (for CI after a publish): "
            "re-read until every device has converged, i.e. applied the desired state (its "
            "sync Synced, its health Healthy or Degraded); exit 1 if one has not when time "
            "runs out. A Degraded device (a warning: it inspects, not quite as declared, e.g. "
            "on a scaled ROI; a candidate rolled back) has converged and is named on stderr; "
            "a Failed, Stale or Unknown one has not. "
            f"Above {SUMMARY_ABOVE} devices the table counts devices per site and condition "
            "and lists only those not Synced (and any not in the fleet); --all lists every "
            "device. --format json always lists every device, one per line."
        ),
    )
    p.add_argument(
        "--broker",
        required=True,
        help="mqtt://HOST:PORT or mqtts://HOST:PORT; a cluster: mqtt://A:PORT,B:PORT,...",
    )
    p.add_argument(
        "--repo",
        type=Path,
        help="fleet repository: flags devices not in the fleet, and (in a git repository) "
        "shows OutOfSync a device whose desired state lags the committed HEAD",
    )
    p.add_argument("--state-dir", type=Path, help="state directory of `linefleet reconcile`")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument(
        "--all",
        dest="every",
        action="store_true",
        help=f"table: a row for every device and line, also above {SUMMARY_ABOVE} devices",
    )
    p.add_argument(
        "--device-keys",
        type=Path,
        metavar="DIR",
        help="<device-id>.pub files: those devices' reports must carry their signature",
    )
    p.add_argument(
        "--quiet", type=seconds, default=0.5, help="seconds without a retained message = done"
    )
    p.add_argument(
        "--edge-export",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="also read a device's air-gap export (`linefleet edge export`): its reports and "
        "events count as received when they were written (repeatable; duplicates dropped)",
    )
    p.add_argument(
        "--labels",
        metavar="URL|FILE",
        help="the trainer's label store: show each line's field escape rate from labelled "
        "audit samples, and judge the policy's max_field_escape_rate (with --repo)",
    )
    p.add_argument(
        "--wait",
        type=seconds,
        metavar="SECONDS",
        help="wait until every device has applied the desired state (sync Synced; health "
        "Healthy, or Degraded: named as a warning) (0: check once); exit 1 if not in time",
    )
    p.set_defaults(run=run)


def collect(
    args: StatusArgs, escapes: Mapping[str, FieldEscapes] | None = None
) -> tuple[FleetStatus, float]:
    from reconciler.service.statusread import read_status

    return read_status(
        args.broker,
        repo=args.repo,
        state_dir=args.state_dir,
        quiet=args.quiet,
        device_keys=args.device_keys,
        edge_exports=args.edge_exports,
        field_escapes=None
        if escapes is None
        else {k: e.rate for k, e in escapes.items() if e.rate},
    )


def read_escapes(args: StatusArgs) -> dict[str, FieldEscapes] | None:
    """The field escape estimates from the label store (`--labels`), else None."""
    if args.labels is None:
        return None
    from linefleet.report.labels import read_field_escapes, store_url
    from reconciler.service.statusread import read_spec

    taxonomies = {} if args.repo is None else dict(read_spec(args.repo).taxonomies)
    return read_field_escapes(store_url(args.labels), taxonomies)


@paused_gc()
def run(ns: argparse.Namespace) -> int:
    """The command, with the cycle collector paused until what it read is freed.

    At 10,000 devices status builds about a million objects, none in a garbage cycle: with the
    pause ending inside `read_status`, its closing young-generation collection walked all of
    them (0.2-0.4 s); ended here, after the command has returned and reference counting has
    freed them, it walks only what is left."""
    from reconciler.service.fleetstatus import json_chunks

    args = StatusArgs(
        ns.broker,
        ns.repo,
        ns.state_dir,
        ns.format,
        ns.quiet,
        ns.wait,
        ns.device_keys,
        tuple(ns.edge_export),
        ns.labels,
        ns.every,
    )
    escapes = read_escapes(args)
    status, now = collect(args, escapes) if args.wait is None else wait_converged(args, escapes)
    if args.format == "json":
        extra = None
        if escapes is not None:
            extra = {"field_escapes": {line: e.to_json() for line, e in escapes.items()}}
        sys.stdout.writelines(json_chunks(status, now, extra))
    else:
        print(render_table(status, now, every=args.every or None))
        if escapes is not None:
            print(render_escapes(escapes))
    if args.wait is None:
        return int(ExitCode.OK)
    if not all_converged(status):
        print(f"not every device has converged after {args.wait:g}s", file=sys.stderr)
        return int(ExitCode.INVALID)
    for dev in status.devices:
        if dev.health.value == "Degraded":
            print(
                printable(
                    f"warning: {dev.site}/{dev.device} converged but Degraded "
                    f"({dev.health.reason}): {dev.health.message}"
                ),
                file=sys.stderr,
            )
    return int(ExitCode.OK)


def converged(dev: DeviceStatus) -> bool:
    """`--wait`'s test: the device applied the desired state (sync Synced) and inspects with
    it (health Healthy, or Degraded: a warning to show, such as a scaled ROI or a rolled-back
    candidate). Failed (cannot converge or inspect), Stale, Unknown, Progressing and OutOfSync
    have not converged."""
    return dev.sync.value == "Synced" and dev.health.value in ("Healthy", "Degraded")


def all_converged(status: FleetStatus) -> bool:
    """Every device converged, and at least one device (an empty broker is not a rollout)."""
    return bool(status.devices) and all(converged(d) for d in status.devices)


WAIT_NAMES = 10
"""`--wait` names this many of the devices it waits for (then says how many more)."""


def wait_converged(
    args: StatusArgs, escapes: Mapping[str, FieldEscapes] | None = None, poll: float = 1.0
) -> tuple[FleetStatus, float]:
    """Re-read the broker until every device has `converged` or `args.wait` seconds have
    passed; say on stderr what is still outstanding whenever that changes."""
    deadline = time.monotonic() + (args.wait or 0.0)
    said = ""
    while True:
        status, now = collect(args, escapes)
        if all_converged(status) or time.monotonic() >= deadline:
            return status, now
        pending = [d for d in status.devices if not converged(d)]
        named = [f"{d.site}/{d.device} {d.condition.type.value}" for d in pending[:WAIT_NAMES]]
        if len(pending) > WAIT_NAMES:
            named.append(f"and {len(pending) - WAIT_NAMES} more")
        line = f"waiting for {len(pending)} device(s): {', '.join(named) or 'no devices yet'}"
        if line != said:
            print(line, file=sys.stderr, flush=True)
            said = line
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))


def _gen(dev: DeviceStatus) -> tuple[str, str]:
    desired = "-" if dev.desired is None else f"g{dev.desired.generation}"
    rep = None if dev.observation is None else dev.observation.reported
    applied = "-" if rep is None or rep.applied is None else f"g{rep.applied.generation}"
    return desired, applied


def _metric(value: float, frames: int, spec: str) -> str:
    """A metric, or `no frames` when nothing was measured (never a made-up 0)."""
    if frames == 0:
        return "no frames"
    if not math.isfinite(value):
        return "non-finite"
    return format(value, spec)


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
        frames = metrics.candidate_frames
        if frames == 0:
            text += " no frames"
        else:
            err = _metric(metrics.candidate_error_rate, frames, ".3f")
            p95 = _metric(metrics.candidate_latency_p95_ms, frames, ".0f")
            text += f" err={err} p95={p95}ms"
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


def needs_look(dev: DeviceStatus) -> bool:
    """Listed in the summary: a device not Synced, or one the fleet repository does not know."""
    return dev.condition.type.value != "Synced" or dev.in_fleet is False


def render_table(status: FleetStatus, now: float, *, every: bool | None = None) -> str:
    """The status as text: a row per device and line (`every`; by default up to
    `SUMMARY_ABOVE` devices), else a summary (devices per site and condition, then the rows of
    the devices that `needs_look`); then each device not Synced with its reason and message,
    the counts, what the reconciler recorded and the rejected messages."""
    if every is None:
        every = len(status.devices) <= SUMMARY_ABOVE
    if every:
        lines = _device_rows(status.devices, now)
    else:
        shown = [d for d in status.devices if needs_look(d)]
        lines = [
            *_site_rows(status.devices),
            "",
            f"{len(shown)} of {len(status.devices)} device(s) not Synced or not in the fleet "
            "(every device: --all)" + (":" if shown else ""),
        ]
        if shown:
            lines += _device_rows(shown, now)
    notes = [
        printable(
            f"{d.site}/{d.device}: {d.condition.type.value} ({d.condition.reason}): "
            f"{d.condition.message}"
        )
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
            lines.append(printable(f"  last error: {rec['last_error']}"))
    lines += [printable(f"note: {n}") for n in status.notes]
    if status.rejections:
        bad = ", ".join(f"{n} {r}" for r, n in sorted(status.rejections.items()))
        lines.append(printable(f"rejected messages: {bad}"))
        lines += [
            printable(f"  last {r}: {status.last_rejection[r]}")
            for r in sorted(status.last_rejection)
        ]
    return "\n".join(lines)


def _columns(rows: list[tuple[str, ...]], right: int = 0) -> list[str]:
    """Rows as aligned text; columns from `right` on are right-aligned (numbers)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            c.rjust(w) if i >= right > 0 else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in rows
    ]


def _device_rows(devices: list[DeviceStatus], now: float) -> list[str]:
    """A header and one row per device and line (a device without lines: one row)."""
    header: tuple[str, ...] = ("SITE", "DEVICE", "LINE", "SYNC", "HEALTH", "DESIRED", "APPLIED")
    header += ("MODEL", "CANDIDATE", "APPROVED BY", "LAST SEEN")
    rows: list[tuple[str, ...]] = [header]
    for dev in devices:
        desired, applied = _gen(dev)
        name = f"{dev.device} (not in fleet)" if dev.in_fleet is False else dev.device
        verdicts = (dev.sync.value, dev.health.value)
        seen, approved = _seen(dev, now), _approved(dev)
        for row in dev.lines or ():
            cells: tuple[str, ...] = (row.line, *verdicts, desired, applied, _model(row))
            cells += (_candidate(row), approved, seen)
            rows.append(tuple(printable(c) for c in (dev.site, name, *cells)))
        if not dev.lines:
            cells = ("-", *verdicts, desired, applied, "-", "-", "-", seen)
            rows.append(tuple(printable(c) for c in (dev.site, name, *cells)))
    return _columns(rows)


FLEET_CONDITIONS = ("Synced", "Progressing", "Degraded", "Failed", "Stale", "Unknown")
"""The conditions of the fleet's view (`Removed` is the device's own view only)."""


def _site_rows(devices: list[DeviceStatus]) -> list[str]:
    """Devices per site and condition, and a total row."""
    per_site: dict[str, Counter[str]] = {}
    for dev in devices:
        per_site.setdefault(dev.site, Counter())[dev.condition.type.value] += 1
    total: Counter[str] = Counter()
    for found in per_site.values():
        total.update(found)
    header = ("SITE", "DEVICES", *(c.upper() for c in FLEET_CONDITIONS))
    rows = [header]
    for site, found in [*sorted(per_site.items()), ("all sites", total)]:
        counts = [str(found[c]) for c in FLEET_CONDITIONS]
        rows.append((printable(site), str(sum(found.values())), *counts))
    return _columns(rows, right=1)


def render_escapes(escapes: Mapping[str, FieldEscapes]) -> str:
    """The field escape section: per line, defective of the labelled audit samples."""
    lines = ["", "field escapes (audit samples the model called ok, labelled by people):"]
    for line, e in escapes.items():
        if e.rate is None:
            estimate = "none labelled yet"
        else:
            r = e.rate
            estimate = (
                f"{r.count} of {r.of} defective: {r.value:.3f} (95% {r.low:.3f}-{r.high:.3f})"
            )
        lines.append(printable(f"  {line:<24} {e.sampled:>5} sampled  {estimate}"))
    if not escapes:
        lines.append("  no audit samples in the label store yet")
    return "\n".join(lines)
