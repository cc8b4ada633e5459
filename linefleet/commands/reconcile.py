"""`linefleet reconcile`: the long-running loop (git fetch polling → publish; record reports)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from linefleet.options import seconds
from linefleet_core.errors import ExitCode, UsageError, need_directory
from linefleet_core.text import printable


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "reconcile",
        help="follow the fleet branch: publish new commits, record what devices report",
        description=(
            "Poll the repository's branch (git fetch when it has the remote), publish each new "
            "head, and record reported states, events and rejected messages in --state-dir "
            "(SQLite) so a restart loses nothing. Stops cleanly on SIGTERM or Ctrl-C (exit 0)."
        ),
    )
    p.add_argument(
        "--broker",
        required=True,
        help="mqtt://HOST:PORT or mqtts://HOST:PORT; a cluster: mqtt://A:PORT,B:PORT,...",
    )
    p.add_argument("--repo", type=Path, default=Path(), help="clone of the fleet repository")
    p.add_argument("--branch", default="main")
    p.add_argument("--remote", default="origin", help="remote to fetch (skipped if absent)")
    p.add_argument("--interval", type=seconds, default=10.0, help="seconds between polls")
    p.add_argument(
        "--full-every",
        type=seconds,
        default=3600.0,
        metavar="SECONDS",
        help="compare every device with the broker at least this often (and on start); in "
        "between, a tick publishes only what changed since the commit the broker's publish "
        "marker names (default: 3600)",
    )
    p.add_argument("--state-dir", type=Path, default=Path(".linefleet/reconciler"))
    p.add_argument("--signing-key", type=Path, help="default: $LINEFLEET_SIGNING_KEY")
    p.add_argument("--artifact-base", help="base URL for repository-relative artifacts")
    p.add_argument(
        "--name",
        default="main",
        help="reconciler name (stable MQTT client id; give each reconciler of a fleet its own)",
    )
    p.add_argument(
        "--lease-seconds",
        type=seconds,
        metavar="SECONDS",
        help="how long the publish lease holds unrenewed, i.e. how soon a standby reconciler "
        "takes over from one that died between publishes (default: 3 x --interval, at least 30)",
    )
    p.add_argument(
        "--forge",
        help="open rollback pull requests when a line breaks its health gates: "
        "local, github://OWNER/REPO or gitea://HOST/OWNER/REPO (default: never)",
    )
    p.add_argument(
        "--device-keys",
        type=Path,
        metavar="DIR",
        help="<device-id>.pub files (`linefleet keys device`): those devices' reports and "
        "events must be signed with their key (refused and counted otherwise)",
    )
    p.add_argument(
        "--max-age",
        type=seconds,
        metavar="SECONDS",
        help="sign documents with expires_at at most SECONDS ahead (re-signed every "
        "SECONDS/2): a device refuses an older document even with its storage wiped "
        "(default: no bound)",
    )
    p.add_argument(
        "--now",
        help="check freezes and production windows at this ISO time instead of the clock "
        "(for tests); a change that is not a rollback waits while its site is frozen",
    )
    p.set_defaults(run=run)


def run(ns: argparse.Namespace) -> int:
    from linefleet.options import parse_now
    from linefleet_core.mqtturl import BrokerAddress
    from linefleet_core.signing import SigningKey, load_device_keys
    from reconciler.service.publish import default_artifact_base
    from reconciler.service.reconcile import Reconciler, Settings, TickOutcome

    need_directory("--repo", ns.repo)
    if ns.interval <= 0:
        raise UsageError("--interval must be positive")
    if ns.lease_seconds is not None and not ns.lease_seconds > ns.interval:
        raise UsageError("--lease-seconds must be longer than --interval (the lease is renewed)")
    if not ns.full_every >= 0:
        raise UsageError("--full-every must not be negative")
    if ns.max_age is not None and not ns.max_age >= 2 * ns.interval:
        raise UsageError("--max-age must be at least twice --interval (documents are re-signed)")
    settings = Settings(
        repo=ns.repo,
        address=BrokerAddress.parse(ns.broker),
        key=SigningKey.load(ns.signing_key),
        state_dir=ns.state_dir,
        artifact_base=ns.artifact_base or default_artifact_base(ns.repo),
        branch=ns.branch,
        remote=ns.remote or None,
        interval=ns.interval,
        name=ns.name,
        forge=ns.forge,
        max_age=ns.max_age,
        device_keys=None if ns.device_keys is None else load_device_keys(ns.device_keys),
        now=parse_now(ns.now),
        lease_seconds=ns.lease_seconds or max(30.0, 3 * ns.interval),
        full_every=ns.full_every,
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        print(f"linefleet reconcile: {signal.Signals(signum).name}, stopping", file=sys.stderr)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    last: list[str] = [""]

    def on_tick(outcome: TickOutcome) -> None:
        for proposed in outcome.rollbacks:
            print(f"proposed {printable(proposed)}", flush=True)
        if outcome.standby:
            line = f"commit {(outcome.commit or '?')[:12]}: {printable(outcome.standby)}"
        elif outcome.error:
            line = f"error at {(outcome.commit or '?')[:12]}: {printable(outcome.error)}"
            if outcome.retry_in:
                line += f" (retry in {outcome.retry_in:.1f}s)"
        elif outcome.published is not None:
            r = outcome.published
            line = (
                f"commit {r.commit[:12]} generation {r.generation}: {r.published} published, "
                f"{r.unchanged} unchanged, {r.pruned} pruned"
            )
            line += " (incremental)" if r.mode == "incremental" else f" (full: {r.full_reason})"
            line += "".join(f"\n  held {printable(note)}" for note in r.held)
        else:
            return
        if line != last[0] or (outcome.published is not None and outcome.published.published):
            print(line, flush=True)
            last[0] = line

    Reconciler.open(settings).run(stop, on_tick)
    return int(ExitCode.OK)
