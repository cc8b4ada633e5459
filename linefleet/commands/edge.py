"""`linefleet edge run|status|override|rollback`: the agent on a device, its local view, an
inspector's correction of a decision, and an operator's rollback by hand.

Exit codes: 0 ok (including a clean SIGTERM shutdown), 1 unreadable local state or an override
refused by the taxonomy, 2 usage (bad arguments, missing trust key, unknown frame source,
unknown frame id).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from linefleet.options import seconds
from linefleet_core.errors import ExitCode, UsageError, need_directory


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "edge",
        help="run the edge agent on a device, or show its local state",
        description="The edge agent: converge to the signed desired state and inspect frames.",
    )
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)

    r = verbs.add_parser(
        "run",
        help="converge and inspect until SIGTERM",
        description="Serve from the persisted state at once, converge to the desired state "
        "received over MQTT, decide every frame, and write one JSON line per decision.",
    )
    r.add_argument("--device", required=True, help="device id, or SITE/DEVICE")
    r.add_argument("--site", help="site id (unless --device is SITE/DEVICE)")
    source = r.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--broker",
        help="mqtt://HOST:PORT or mqtts://HOST:PORT; a cluster: mqtt://A:PORT,B:PORT,...",
    )
    source.add_argument(
        "--bundle",
        type=Path,
        metavar="FILE",
        help="air-gapped: apply this signed site bundle (`linefleet bundle export`) with the "
        "same checks as over MQTT, then run with no broker",
    )
    r.add_argument("--state-dir", required=True, type=Path, help="local state directory")
    where = r.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--frames", help="one source for one line: directory of images, video file, or camera index"
    )
    where.add_argument(
        "--sources",
        type=Path,
        metavar="FILE",
        help="every camera's source: a YAML file 'cameras: {CAMERA: folder|video|rtsp://…|USB "
        "index}'; cameras are read at once and each frame is decided on every line the camera "
        "serves (see docs/edge.md)",
    )
    r.add_argument(
        "--workers",
        type=int,
        default=2,
        help="inspection threads with --sources (default 2)",
    )
    r.add_argument(
        "--trust-key",
        required=True,
        type=Path,
        action="append",
        help="pinned public key (.pub) or a directory of them; repeat to pin several",
    )
    r.add_argument("--results", type=Path, help="JSON lines of decisions (default: stdout)")
    r.add_argument("--line", help="line the frames come from (default: the first line served)")
    r.add_argument(
        "--max-frames",
        type=int,
        help="stop reading frames after N (with --sources: N per camera); keep running",
    )
    r.add_argument(
        "--artifact-root",
        type=Path,
        action="append",
        default=[],
        help="accept file:// artifacts only under this folder (repeatable; without it every "
        "file:// artifact is refused, http(s):// ones are not affected)",
    )
    r.add_argument(
        "--registry-credentials",
        type=Path,
        metavar="FILE",
        help="JSON of read-only registry credentials for oci:// models, by HOST[:PORT]: "
        '{"mirror.site:5000": {"token": "..."}} or {"username": ..., "password": ...} '
        "(kept on the device, never in the signed desired state)",
    )
    r.add_argument(
        "--recent-frames",
        type=int,
        metavar="N",
        help="keep the last N decisions with their frames for inspector overrides "
        "(default 1000; 0: none)",
    )
    r.add_argument(
        "--device-key",
        type=Path,
        metavar="FILE",
        help="this device's Ed25519 private key (`linefleet keys device`): every report and "
        "event it sends is signed, for a reconciler that checks (--device-keys)",
    )
    r.set_defaults(run=run_agent)

    i = verbs.add_parser(
        "install-service",
        help="write the systemd unit of the agent (restart on failure, watchdog, journald)",
        description="Write linefleet-edge.service: Type=notify with the watchdog fed from the "
        "agent's loops, Restart=on-failure, logs to journald, state under /var/lib. Then: "
        "systemctl daemon-reload && systemctl enable --now linefleet-edge.",
    )
    i.add_argument("--device", required=True, help="device id, or SITE/DEVICE")
    i.add_argument("--site", help="site id (unless --device is SITE/DEVICE)")
    i.add_argument(
        "--broker",
        required=True,
        help="mqtt://HOST:PORT or mqtts://HOST:PORT; a cluster: mqtt://A:PORT,B:PORT,...",
    )
    i.add_argument("--sources", required=True, type=Path, help="the device's sources file")
    i.add_argument("--trust-key", required=True, type=Path, help="pinned key or key folder")
    i.add_argument("--state-dir", type=Path, default=Path("/var/lib/linefleet/edge"))
    i.add_argument("--artifact-root", type=Path, action="append", default=[])
    i.add_argument("--user", default="linefleet", help="the service's user (default linefleet)")
    i.add_argument("--watchdog-seconds", type=int, default=30)
    i.add_argument("--executable", help="the linefleet command (default: the one running this)")
    i.add_argument(
        "--out",
        type=Path,
        default=Path("/etc/systemd/system/linefleet-edge.service"),
        help="where to write the unit ('-': standard output)",
    )
    i.set_defaults(run=install_service)

    s = verbs.add_parser(
        "status",
        help="show the local view (models, generation, outbox) with no network",
        description="Read the state directory only: works offline and while the agent runs.",
    )
    s.add_argument("--state-dir", required=True, type=Path)
    s.add_argument("--format", choices=("text", "json"), default="text")
    s.set_defaults(run=show_status)

    o = verbs.add_parser(
        "override",
        help="inspectors' corrections of decisions: queue them for the trainer",
        description="Look up the device's decision on FRAME_ID, check CLASS against the line's "
        "taxonomy, and queue an inspection-override event with the frame in the device's "
        "outbox; the running agent delivers it (works offline and while the agent runs). "
        "With --from, every correction in the file is checked first and all are queued in "
        "one transaction, or none. Exit codes: 0 queued, 1 unknown class (or the model said "
        "it already), 2 unknown frame, line or state directory, or an unreadable --from file.",
    )
    o.add_argument("--state-dir", required=True, type=Path, help="the agent's state directory")
    one = o.add_mutually_exclusive_group(required=True)
    one.add_argument("--frame", metavar="FRAME_ID", help="the frame id decided")
    one.add_argument(
        "--from",
        dest="batch",
        metavar="FILE",
        help="JSON Lines of corrections ('-': standard input), one object per line: frame, "
        "label, and optionally line, note, inspector",
    )
    o.add_argument("--label", metavar="CLASS", help="the class it really is (with --frame)")
    o.add_argument(
        "--inspector", metavar="NAME", help="who says so (with --from: for rows without one)"
    )
    o.add_argument(
        "--line", metavar="SITE/LINE", help="the line (if frame ids repeat across lines)"
    )
    o.add_argument(
        "--note", default="", metavar="TEXT", help="a free-text remark for QA (--from: default)"
    )
    o.set_defaults(run=queue_override)

    i = verbs.add_parser(
        "import",
        help="apply a signed site bundle with no broker (air-gapped)",
        description="Verify the bundle's signed manifest, run this device's document through "
        "the MQTT path's checks (pinned keys, signature, content hash, replay floor), stage "
        "its models (size, sha256), and converge. Exit codes: 0 applied, 1 refused (tampered, "
        "stale, not for this device) or a model that does not load, 2 usage, or another agent "
        "runs on the state directory (give it the bundle with `edge run --bundle`).",
    )
    i.add_argument("file", type=Path, metavar="FILE")
    i.add_argument("--state-dir", required=True, type=Path)
    i.add_argument("--device", required=True, help="device id, or SITE/DEVICE")
    i.add_argument("--site", help="site id (unless --device is SITE/DEVICE)")
    i.add_argument("--trust-key", required=True, type=Path, action="append")
    i.add_argument("--timeout", type=seconds, default=60.0, help="seconds to converge")
    i.set_defaults(run=import_bundle_cli)

    x = verbs.add_parser(
        "export",
        help="write the outbox and spooled frames to a file (the way back from an air gap)",
        description="Reports, events, overrides and spooled frames, for `linefleet labels "
        "ingest-events FILE` and `linefleet status --edge-export FILE` (both de-duplicate). "
        "With --ack (no agent running) what was written is removed from the device.",
    )
    x.add_argument("--state-dir", required=True, type=Path)
    x.add_argument("--out", required=True, type=Path)
    x.add_argument("--ack", action="store_true", help="drop what was exported from the device")
    x.set_defaults(run=export_cli)

    b = verbs.add_parser(
        "rollback",
        help="switch a line to the model kept as previous, now, with no broker",
        description="Roll LINE back to the model the device keeps loaded as its previous one, "
        "at once and offline: through the running agent, or directly when none runs. The "
        "device reports it (a rollback event, phase rolled_back) when it is back online; the "
        "reconciler shows the divergence from git and proposes the revert pull request. The "
        "line stays rolled back until a new desired state arrives. Exit codes: 0 rolled "
        "back, 2 unknown line, no previous model or state directory, 4 the running agent did "
        "not take it.",
    )
    b.add_argument("--state-dir", required=True, type=Path, help="the agent's state directory")
    b.add_argument("--line", required=True, metavar="SITE/LINE")
    b.add_argument("--operator", default="", metavar="NAME", help="who rolls back")
    b.add_argument("--note", default="", metavar="TEXT", help="why (goes into the event)")
    b.set_defaults(run=roll_back)


def _site_and_device(device: str, site: str | None) -> tuple[str, str]:
    from linefleet_core.refs import ID_PATTERN  # pydantic: only for the commands that need it

    if "/" in device:
        site_part, _, device = device.partition("/")
        if site and site != site_part:
            raise UsageError(f"--device {site_part}/{device} disagrees with --site {site}")
        site = site_part
    if not site:
        raise UsageError("--device: name the site too: --device SITE/DEVICE or --site SITE")
    for name, value in (("--site", site), ("--device", device)):
        if not re.fullmatch(ID_PATTERN, value):
            raise UsageError(f"{name} {value!r}: lower-case letters, digits and dashes only")
    return site, device


def run_agent(ns: argparse.Namespace) -> int:
    from edge_puller.runner import RunOptions, run
    from linefleet_core.mqtturl import BrokerAddress
    from linefleet_core.signing import load_trusted_keys

    site, device = _site_and_device(ns.device, ns.site)
    for path in ns.trust_key:
        if not path.exists():
            raise UsageError(f"--trust-key {path}: no such file or directory")
    keys = load_trusted_keys(ns.trust_key)
    if not keys:
        raise UsageError(
            f"--trust-key: no public keys (*.pub) in {', '.join(map(str, ns.trust_key))}"
        )
    if ns.max_frames is not None and ns.max_frames < 1:
        raise UsageError("--max-frames must be at least 1")
    if ns.recent_frames is not None and ns.recent_frames < 0:
        raise UsageError("--recent-frames must be 0 or more")
    recent = {} if ns.recent_frames is None else {"recent_frames": ns.recent_frames}
    sources = None
    if ns.sources is not None:
        from edge_puller.sources import read_sources

        if ns.line is not None:
            raise UsageError("--line goes with --frames; --sources names each camera's lines")
        if ns.workers < 1:
            raise UsageError("--workers must be at least 1")
        sources = read_sources(ns.sources)
    device_key = None
    if ns.device_key is not None:
        from linefleet_core.signing import SigningKey

        device_key = SigningKey.load(ns.device_key)
    for root in ns.artifact_root:
        need_directory("--artifact-root", root)
    credentials = {}
    if ns.registry_credentials is not None:
        from linefleet_core.oci import OciError, load_credentials

        try:
            credentials = load_credentials(ns.registry_credentials)
        except OciError as exc:
            raise UsageError(f"--registry-credentials {exc}") from None
    options = RunOptions(
        site=site,
        device=device,
        broker=BrokerAddress.parse(ns.broker) if ns.broker else None,
        bundle=ns.bundle,
        state_dir=ns.state_dir,
        frames=ns.frames,
        trusted_keys=keys,
        results=ns.results,
        line=ns.line,
        max_frames=ns.max_frames,
        artifact_roots=tuple(ns.artifact_root),
        credentials=credentials,
        sources=sources,
        workers=ns.workers,
        device_key=device_key,
        **recent,
    )
    return run(options)


def install_service(ns: argparse.Namespace) -> int:
    import shutil
    import sys

    from edge_puller.systemd import UnitOptions, unit_text
    from linefleet_core.mqtturl import BrokerAddress

    site, device = _site_and_device(ns.device, ns.site)
    BrokerAddress.parse(ns.broker)
    if not ns.state_dir.is_absolute() or not ns.sources.is_absolute():
        raise UsageError("--state-dir and --sources must be absolute paths (systemd runs them)")
    if ns.watchdog_seconds < 2:
        raise UsageError("--watchdog-seconds must be at least 2")
    executable = ns.executable or shutil.which("linefleet") or f"{sys.executable} -m linefleet"
    text = unit_text(
        UnitOptions(
            site=site,
            device=device,
            broker=ns.broker,
            sources=ns.sources,
            trust_keys=ns.trust_key.absolute(),
            state_dir=ns.state_dir,
            executable=executable,
            artifact_roots=tuple(p.absolute() for p in ns.artifact_root),
            user=ns.user,
            watchdog_seconds=ns.watchdog_seconds,
        )
    )
    if str(ns.out) == "-":
        print(text, end="")
        return int(ExitCode.OK)
    from linefleet_core.atomic import write_atomic

    ns.out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(ns.out, text.encode())
    print(f"wrote {ns.out}; next: systemctl daemon-reload && systemctl enable --now {ns.out.stem}")
    return int(ExitCode.OK)


def show_status(ns: argparse.Namespace) -> int:
    from edge_puller.localstatus import local_status, render_json, render_text

    need_directory("--state-dir", ns.state_dir)
    status = local_status(ns.state_dir)
    print(render_json(status) if ns.format == "json" else render_text(status))
    return int(ExitCode.OK)


def import_bundle_cli(ns: argparse.Namespace) -> int:
    import time

    from edge_puller.agent import Agent
    from edge_puller.airgap import import_bundle
    from edge_puller.runner import lock_state_dir
    from linefleet_core.signing import load_trusted_keys

    site, device = _site_and_device(ns.device, ns.site)
    if not ns.file.is_file():
        raise UsageError(f"{ns.file}: no such file")
    keys = load_trusted_keys(ns.trust_key)
    if not keys:
        raise UsageError("--trust-key: no public keys (*.pub)")
    lock = lock_state_dir(ns.state_dir)
    agent = Agent(site, device, ns.state_dir, keys)
    try:
        done = import_bundle(agent, ns.file)
        deadline = time.monotonic() + ns.timeout
        while time.monotonic() < deadline:
            agent.tick()
            if agent.state.applied_generation == done.generation or agent.waiting:
                break
            time.sleep(0.05)
        agent.report()
        state = agent.state
    finally:
        agent.recent.close()
        agent.outbox.close()
        os.close(lock)
    if state.applied_generation != done.generation:
        why = agent.waiting or agent.error or "not converged in time"
        print(f"linefleet: error: generation {done.generation} not applied: {why}", file=sys.stderr)
        return int(ExitCode.INVALID)
    print(
        f"applied generation {done.generation} (commit {done.commit[:12]}) from {ns.file}; "
        f"{done.staged} model(s) staged from the bundle"
    )
    return int(ExitCode.OK)


def export_cli(ns: argparse.Namespace) -> int:
    from edge_puller.airgap import export_device

    if not (ns.state_dir / "outbox.db").is_file():
        raise UsageError(f"--state-dir {ns.state_dir}: no device outbox there")
    lock = None
    if ns.ack:
        from edge_puller.runner import lock_state_dir

        lock = lock_state_dir(ns.state_dir)  # an agent delivering at the same time: refused
    try:
        done = export_device(ns.state_dir, ns.out, ack=ns.ack)
    finally:
        if lock is not None:
            os.close(lock)
    print(f"wrote {ns.out}: {done.messages} message(s), {done.frames} spooled frame(s)")
    return int(ExitCode.OK)


def roll_back(ns: argparse.Namespace) -> int:
    from edge_puller.handrollback import Request
    from edge_puller.handrollback import roll_back as apply

    if not (ns.state_dir / "state.json").is_file():
        raise UsageError(f"--state-dir {ns.state_dir}: no device state there")
    done = apply(ns.state_dir, Request(ns.line, ns.operator, ns.note))
    how = "by the running agent" if done.by_agent else "in the state (no agent running)"
    print(
        f"{done.line}: rolled back from {done.rolled_back} to {done.serving} {how}; "
        "reported when the device is back online"
    )
    return int(ExitCode.OK)


def queue_override(ns: argparse.Namespace) -> int:
    from edge_puller.corrections import read_corrections
    from edge_puller.override import OverrideRequest, queue_overrides

    if ns.batch is not None:
        if ns.label is not None:
            raise UsageError("--label goes with --frame; with --from each row has its label")
        requests = read_corrections(ns.batch, inspector=ns.inspector, line=ns.line, note=ns.note)
    else:
        if ns.label is None or ns.inspector is None:
            raise UsageError("--frame needs --label CLASS and --inspector NAME")
        requests = [OverrideRequest(ns.frame, ns.label, ns.inspector, ns.line, ns.note)]
    queued = queue_overrides(ns.state_dir, requests)
    for request, done in zip(requests, queued, strict=True):
        print(
            f"queued inspection-override #{done.seq} on {done.line}: frame {request.frame_id} "
            f"is {done.label}, not {done.predicted} ({done.model}, {done.taxonomy}); "
            "the agent sends it with the frame"
        )
    if len(queued) > 1:
        seqs = f"#{queued[0].seq}-#{queued[-1].seq}"
        print(f"{len(queued)} corrections queued in one transaction ({seqs})")
    return int(ExitCode.OK)
