"""Read the fleet's status: the retained desired, reported and online messages on the broker
(when given), what `linefleet reconcile` recorded in its state directory (when given), and the
fleet repository's device list (to flag strangers). `linefleet status` and `linefleet report`
both read status this way; `fleetstatus` derives the conditions from what is read here.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from linefleet_core import spec as fleetspec
from linefleet_core.errors import UsageError
from linefleet_core.mqtturl import BrokerAddress
from linefleet_core.wire import Channel, DesiredState, topic_filter
from reconciler.service.fleetstatus import FleetStatus, fleet_status
from reconciler.service.mqtt import retained_snapshot
from reconciler.service.observed import Accepted, Observations, classify
from reconciler.service.store import DB_NAME, Store


def fleet_devices(repo: Path) -> set[str]:
    """`site/device` of every edge device the fleet repository at `repo` declares."""
    if not repo.is_dir():
        raise UsageError(f"--repo {repo}: no such directory")
    spec, _ = fleetspec.load(fleetspec.DirectorySource(repo))
    return {f"{d.site}/{d.id}" for d in spec.devices.values()}


def read_status(
    broker: str | None,
    *,
    repo: Path | None = None,
    state_dir: Path | None = None,
    quiet: float = 0.5,
    fleet: set[str] | None = None,
) -> tuple[FleetStatus, float]:
    """The fleet's status and the moment it was read.

    `fleet` (keyed `site/device`) is read from `repo` unless given. Without a broker only the
    recorded reports are known (no desired state).
    """
    if fleet is None and repo is not None:
        fleet = fleet_devices(repo)
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
    if broker is None:
        now = time.time()
        return fleet_status({}, observations, now, fleet), now
    address = BrokerAddress.parse(broker)
    filters = [topic_filter(c) for c in (Channel.DESIRED, Channel.REPORTED, Channel.ONLINE)]
    client = f"linefleet-status-{uuid.uuid4().hex[:12]}"
    snapshot = retained_snapshot(address, filters, client, quiet=quiet)
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
            observations.ingest(name, msg.payload, now, known, live=False)
    status = fleet_status(desired, observations, now, fleet)
    status.reconciler = recorded
    return status, now
