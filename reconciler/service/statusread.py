"""Read the fleet's status: the retained desired, reported and online messages on the broker
(when given), what `linefleet reconcile` recorded in its state directory (when given), and the
fleet repository's device list (to flag strangers). `linefleet status` and `linefleet report`
both read status this way; `fleetstatus` derives the conditions from what is read here.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from linefleet_core.errors import LinefleetError, UsageError, need_directory
from linefleet_core.gcpause import paused_gc
from linefleet_core.mqttsession import Message, RetainedUnsupported, Snapshot, retained_snapshot
from linefleet_core.mqtturl import BrokerAddress
from linefleet_core.signing import load_device_keys
from linefleet_core.wire import Channel, DesiredState, topic, topic_filter
from reconciler.service.fleetstatus import FleetStatus, fleet_status
from reconciler.service.mqttread import read_retained
from reconciler.service.observed import Accepted, Observations, Rejected, classify
from reconciler.service.store import DB_NAME, Store

if TYPE_CHECKING:  # loading a fleet repository is for --repo only: imported when needed
    from linefleet_core import spec as fleetspec
    from linefleet_core.catalogue import Rate


def read_spec(repo: Path, checks: fleetspec.Checks | None = None) -> fleetspec.FleetSpec:
    """The fleet repository at `repo` as declared (for its device list and line assignments).

    Pass the same `checks` to `read_status`: the git side of `--repo` then reuses every file
    parsed here (the working tree and HEAD share nearly all of them). In a git repository the
    parsed YAML is kept by blob id in the git folder (`linefleet_forge.gitcache`, as `validate`
    and `plan` keep it): the next run parses only the files that changed; every check runs."""
    from linefleet_core import spec as fleetspec
    from linefleet_forge import gitcache
    from linefleet_forge.gitrepo import GitObjects

    need_directory("--repo", repo)
    try:  # in a git repository: YAML parsed by an earlier run, by blob id (`gitcache`)
        objects: GitObjects | None = GitObjects.open(repo)
    except LinefleetError:
        objects = None
    parsed = None if objects is None else gitcache.load_parsed(objects)
    spec, _ = fleetspec.load(fleetspec.DirectorySource(repo), checks, parsed)
    if objects is not None and parsed is not None:
        gitcache.save_parsed(objects, parsed)
    return spec


def read_status(
    broker: str | None,
    *,
    repo: Path | None = None,
    state_dir: Path | None = None,
    quiet: float = 0.5,
    spec: fleetspec.FleetSpec | None = None,
    device_keys: Path | None = None,
    edge_exports: tuple[Path, ...] = (),
    field_escapes: Mapping[str, Rate] | None = None,
    checks: fleetspec.Checks | None = None,
) -> tuple[FleetStatus, float]:
    """The fleet's status and the moment it was read.

    `spec` is read from `repo` unless given: it flags strangers and says which lines each
    device serves. Without a broker only the recorded reports are known (no desired state).
    With `device_keys` (a folder of `<device>.pub`), reports must carry the device's signature.
    `edge_exports` (`linefleet edge export` files from air-gapped devices) add their reports
    and events as of the time each was written, de-duplicated as over MQTT.
    `field_escapes` (per line, from the trainer's labelled audit samples, read by the CLI) are
    judged against the policy's `max_field_escape_rate` (with `spec` or `repo`).
    """
    with paused_gc():  # 10,000 devices: about a million objects, no garbage cycles
        return _read_status(
            broker, repo, state_dir, quiet, spec, device_keys, edge_exports, field_escapes, checks
        )


def _read_status(
    broker: str | None,
    repo: Path | None,
    state_dir: Path | None,
    quiet: float,
    spec: fleetspec.FleetSpec | None,
    device_keys: Path | None,
    edge_exports: tuple[Path, ...],
    field_escapes: Mapping[str, Rate] | None,
    checks: fleetspec.Checks | None,
) -> tuple[FleetStatus, float]:
    checks = {} if checks is None else checks
    if spec is None and repo is not None:
        spec = read_spec(repo, checks)
    fleet = None if spec is None else {f"{d.site}/{d.id}" for d in spec.devices.values()}
    assigned = None
    if spec is not None:
        from linefleet_core.spec import assigned_lines

        assigned = assigned_lines(spec)
    limit = None if spec is None else spec.policy.health_gates.max_field_escape_rate
    observations = Observations()
    recorded: dict[str, str] = {}
    if state_dir is not None:
        if not (state_dir / DB_NAME).is_file():
            raise UsageError(f"--state-dir {state_dir}: no {DB_NAME} (run reconcile first)")
        store = Store(state_dir)
        try:
            observations = store.load()
            recorded = store.meta() if broker is not None else {}
        finally:
            store.close()
    keys = None if device_keys is None else load_device_keys(device_keys)
    known = None if fleet is None else {(k.partition("/")[0], k.partition("/")[2]) for k in fleet}
    for path in edge_exports:
        _ingest_export(observations, path, time.time(), known, keys)
    if broker is None:
        now = time.time()
        status = fleet_status({}, observations, now, fleet, assigned, None, field_escapes, limit)
        return status, now
    early = Early(known, keys)  # classifies each message while the broker sends the rest
    snapshot = read_snapshot(BrokerAddress.parse(broker), quiet, known, early)
    now = time.time()
    desired = intake(snapshot, observations, now, early=early)
    behind: dict[str, str] = {}
    if repo is not None:  # git ahead of what the broker holds for a device: OutOfSync
        from reconciler.service.behind import git_behind

        behind = git_behind(repo, desired, checks=checks)
    status = fleet_status(desired, observations, now, fleet, assigned, behind, field_escapes, limit)
    status.reconciler = recorded
    if snapshot.exact:
        status.notes.append(exact_note(broker, len(known or ())))
    return status, now


def exact_note(broker: str, devices: int) -> str:
    """What a status read by exact topics could not see (`linefleet_core.mqttsession.Snapshot`)."""
    address = BrokerAddress.parse(broker)
    why = (
        "?retained=exact"
        if address.retained == "exact"
        else "it hands retained messages only to exact-topic subscriptions"
    )
    return (
        f"broker {address.url} was read by exact topic ({why}): the {devices} device(s) of "
        "the fleet repository were read; a device that is not in it (a stranger, or a removed "
        "device that kept its documents) is invisible here, unless `linefleet reconcile` "
        "recorded it (--state-dir)"
    )


def read_snapshot(
    address: BrokerAddress,
    quiet: float = 0.5,
    devices: Iterable[tuple[str, str]] | None = None,
    each: Callable[[Message], object] | None = None,
) -> Snapshot:
    """The retained desired, reported and online messages of every device, by topic (a QoS 0
    subscription in a fresh clean session).

    Through wildcards the snapshot is read without paho (`reconciler.service.mqttread`, which
    returns what `linefleet_core.mqttsession.retained_snapshot(..., qos=0)` does). On a broker
    that hides retained messages from wildcards (the raw reader's probe says so), or with
    `?retained=exact`, those of `devices` (site, device) are read by exact topic through
    `retained_snapshot` (`Snapshot.exact`); without `devices`, it is refused there.
    `each` sees every message as the raw reader reads it (`read_retained`; not by exact
    topic: there the snapshot is all there is)."""
    channels = (Channel.DESIRED, Channel.REPORTED, Channel.ONLINE)
    filters = [topic_filter(c) for c in channels]
    client = f"linefleet-status-{uuid.uuid4().hex[:12]}"
    if address.retained != "exact":
        try:
            return Snapshot(read_retained(address, filters, client, quiet=quiet, each=each))
        except RetainedUnsupported:
            pass  # read by exact topic below (or refused there, saying what it needs)
    expand = None
    if devices is not None:
        exact = [topic(site, device, c) for site, device in sorted(devices) for c in channels]
        expand = lambda _found: exact  # noqa: E731 (the same topics whatever was found)
    return retained_snapshot(address, filters, client, quiet=quiet, qos=0, expand=expand)


class Early:
    """Classify retained messages as they arrive (`classify` is pure: the result depends on
    the topic, the bytes, `known` and `keys` only), so that the CPU work of the intake runs
    while the broker is still sending the rest of a 30,000-message snapshot.

    Nothing is recorded here: `intake` records, in topic order, the classification of the
    bytes each topic holds in the snapshot, taking it from here only when it was made of
    those very bytes (a topic that arrived twice keeps its last message in both)."""

    def __init__(
        self,
        known: set[tuple[str, str]] | None = None,
        keys: Mapping[str, Ed25519PublicKey] | None = None,
    ) -> None:
        self.known = known
        self.keys = keys
        self.done: dict[str, tuple[bytes, Accepted | Rejected]] = {}

    def __call__(self, msg: Message) -> None:
        self.done[msg.topic] = (msg.payload, self.classify(msg.topic, msg.payload))

    def classify(self, name: str, payload: bytes) -> Accepted | Rejected:
        """A desired document is anybody's to read (not judged against `known` or `keys`:
        a stranger's is still shown); a device's own messages are."""
        if name.endswith("/desired"):
            return classify(name, payload)
        return classify(name, payload, self.known, self.keys)

    def result(self, name: str, payload: bytes) -> Accepted | Rejected:
        got = self.done.get(name)
        if got is not None and got[0] is payload:
            return got[1]
        return self.classify(name, payload)


def intake(
    snapshot: Mapping[str, Message],
    observations: Observations,
    now: float,
    known: set[tuple[str, str]] | None = None,
    keys: Mapping[str, Ed25519PublicKey] | None = None,
    *,
    early: Early | None = None,
) -> dict[str, DesiredState]:
    """Classify a snapshot: reports and births go into `observations` (as of `now`, a retained
    replay), refusals are counted there; returns the desired documents by `site/device`.
    `early` (which then holds `known` and `keys`) has classified messages as they were read."""
    if early is not None and (known is not None or keys is not None):
        raise ValueError("intake: with `early`, `known` and `keys` are early's")
    reader = Early(known, keys) if early is None else early
    desired: dict[str, DesiredState] = {}
    for name, msg in sorted(snapshot.items()):
        result = reader.result(name, msg.payload)
        if name.endswith("/desired"):
            if isinstance(result, Accepted) and isinstance(result.message, DesiredState):
                desired[f"{result.site}/{result.device}"] = result.message
            elif not isinstance(result, Accepted):
                observations.reject(result)
        else:
            observations.record(result, now, live=False)
    return desired


def _ingest_export(
    observations: Observations,
    path: Path,
    now: float,
    known: set[tuple[str, str]] | None,
    keys: dict[str, Ed25519PublicKey] | None,
) -> None:
    """Feed an edge export's reports and events in, each as of the time it was written."""
    from linefleet_core.bundle import BundleError, read_export

    if not path.is_file():
        raise UsageError(f"--edge-export {path}: no such file")
    try:
        messages, _ = read_export(path)
    except BundleError as exc:
        raise UsageError(f"--edge-export {exc}") from None
    for message in messages:
        if message.kind not in ("report", "event"):
            continue
        at = now
        try:
            stamp = json.loads(message.payload).get("at")
            at = min(now, dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp())
        except (ValueError, AttributeError, TypeError):
            pass
        observations.ingest(message.topic, message.payload, at, known, live=False, device_keys=keys)
