"""A NATS cluster loses a node mid-rollout: every device still converges, nothing acknowledged
is lost.

Three NATS nodes (JetStream and MQTT on each, streams and consumers replicated 3 times); a
generated fleet of 12 devices, each device the real edge MQTT link (`edge_puller.link.Link`:
persistent session, will, re-subscribe, failover along the node list) spread over the three
nodes. The reconciler publishes generation 1 through node 0 and every device converges. Then
every line changes, and while generation 2 is being published through node 0, node 0 is killed
(SIGKILL) as soon as the first new document shows up on another node. Whatever the interleaving,
`publish` either got every PUBACK or says how many it got (exit 4); the retry, as `reconcile`
does it, fails over to a live node. Then:
- every device, including the four that were connected to node 0, holds a verified
  generation-2 document (a device whose live delivery was lost gets the retained copy at its
  next periodic re-subscribe: `Link.resync`);
- each surviving node's retained view holds every generation-2 document (a dry-run publish
  through it finds nothing to send). A node's view is rebuilt from the replicated retained
  stream and was seen to lag for a few seconds after the loss, so this is waited for.
"""

from __future__ import annotations

import functools
import threading
import time
from pathlib import Path

import pytest
import yaml

from edge_puller.link import Link
from edge_puller.outbox import Outbox
from linefleet.cli import main
from linefleet_core.errors import TemporaryError
from linefleet_core.mqttsession import Session
from linefleet_core.mqtturl import BrokerAddress
from linefleet_core.signing import SigningKey, VerifyError, verify
from linefleet_core.wire import Channel, topic_filter
from reconciler.service.publish import Result, load_revision, publish
from tests.support import minifleet
from tests.support.brokers import require
from tests.support.nats import NatsCluster
from tests.support.waiting import until, wait_for

pytestmark = pytest.mark.integration
RESYNC = 10.0
PUBLISH_PATIENCE = 180.0
"""The links' re-subscribe period (300 s in production): a live delivery lost in the node's
fall is made good by the retained copy (seen on NATS 2.9: a device on a surviving node, never
disconnected, missed its new document)."""


class Device:
    """One device's MQTT link; remembers the newest verified generation it received."""

    def __init__(self, url: str, site: str, name: str, key: SigningKey, state: Path) -> None:
        self.name = name
        self.trusted = {key.key_id: key.public}
        self.generation = 0
        self.link = Link(
            BrokerAddress.parse(url),
            site,
            name,
            self.on_desired,
            Outbox(state / "outbox.db"),
            resync=RESYNC,
        )

    def on_desired(self, payload: bytes) -> None:
        try:
            doc = verify(payload, self.trusted, device=self.name)
        except VerifyError:
            return
        self.generation = max(self.generation, doc.generation)


def publish_until_done(repo: Path, url: str, key: SigningKey) -> Result:
    """`publish`, retried as the reconcile loop retries a temporary failure: after a pause,
    for up to `PUBLISH_PATIENCE` seconds. A NATS cluster that has just lost a node refuses
    sessions (no CONNACK, no SUBACK) until JetStream has elected new leaders: about 15 s on a
    quiet machine, over 100 s once when the 2 cores were running the whole suite."""
    last: Exception | None = None
    end = time.monotonic() + PUBLISH_PATIENCE
    while time.monotonic() < end:
        try:
            return publish(
                load_revision(repo, "HEAD"), BrokerAddress.parse(url), key, "file:///x", quiet=0.3
            )
        except TemporaryError as exc:  # "k of N message(s) acknowledged"; the node is gone
            print(f"publish: {exc}; retrying")  # shown with -s: where the kill landed
            last = exc
            time.sleep(1.0)
    raise AssertionError(f"publish never completed in {PUBLISH_PATIENCE:g} s: {last}")


def holds_everything(repo: Path, url: str, key: SigningKey) -> bool:
    """A dry-run publish through `url` finds every document retained: nothing to send."""
    try:
        plan = publish(
            load_revision(repo, "HEAD"),
            BrokerAddress.parse(url),
            key,
            "file:///x",
            quiet=0.3,
            dry_run=True,
        )
    except TemporaryError:
        return False
    return (plan.published, plan.unchanged) == (0, 12)


def change_every_line(repo: Path) -> None:
    for line in sorted((repo / "fleet/sites").glob("*/lines/*.yaml")):
        doc = yaml.safe_load(line.read_text())
        doc["rollout"].setdefault("telemetry", {})["daily_upload_budget_mb"] = 7.0
        line.write_text(yaml.safe_dump(doc, sort_keys=False))
    minifleet.commit_all(repo, "every line: smaller upload budget")


@pytest.mark.timeout(600)  # two publishes, each may wait out a leader election
def test_killing_a_node_mid_rollout_loses_nothing(tmp_path: Path) -> None:
    require("nats-cluster")
    repo = tmp_path / "fleet"
    generate = ["fleet", "generate", "--out", str(repo), "--sites", "3", "--git"]
    sizes = ["--lines-per-site", "4", "--cameras-per-line", "1", "--devices-per-site", "4"]
    assert main([*generate, *sizes]) == 0
    spec = load_revision(repo, "HEAD").spec
    key = SigningKey.generate()
    with NatsCluster(tmp_path / "nats") as cluster:
        devices = [
            Device(cluster.url_from(i % 3), d.site, d.id, key, tmp_path / "edge" / d.id)
            for i, d in enumerate(sorted(spec.devices.values(), key=lambda d: d.id))
        ]
        assert len(devices) == 12
        for device in devices:
            device.link.start()
        try:
            wait_for(
                "every device connected", lambda: all(d.link.connected.is_set() for d in devices)
            )
            first = publish_until_done(repo, cluster.url_from(0), key)
            assert (first.published, first.generation) == (12, 1)
            replicated = {"$MQTT_sess": 3, "$MQTT_msgs": 3, "$MQTT_rmsgs": 3}
            assert cluster.stream_replicas() == replicated  # what makes losing a node safe
            wait_for("generation 1 everywhere", lambda: all(d.generation == 1 for d in devices))

            change_every_line(repo)
            watcher = Session(
                BrokerAddress.parse(cluster.url_from(1)),
                "lf-watcher",
                subscriptions=[topic_filter(Channel.DESIRED)],
            ).connect()
            killed = threading.Event()

            def kill_node_0_at_the_first_new_document() -> None:
                while not killed.is_set():
                    msg = watcher.inbox.get()
                    if not msg.retain and b'"generation":2' in msg.payload:
                        cluster.nodes[0].kill()
                        killed.set()

            threading.Thread(target=kill_node_0_at_the_first_new_document, daemon=True).start()
            second = publish_until_done(repo, cluster.url_from(0), key)
            wait_for("node 0 killed mid-rollout", killed.is_set)
            watcher.close()
            assert second.generation == 2

            if not until(lambda: all(d.generation == 2 for d in devices), timeout=90):
                state = [
                    (
                        d.name,
                        d.generation,
                        d.link.connects,
                        d.link.connected.is_set(),
                        d.link.last_error,
                    )
                    for d in devices
                ]
                raise AssertionError(f"not every device at generation 2: {state}\n{cluster.log()}")
            assert not cluster.nodes[0].running
            moved = [d for i, d in enumerate(devices) if i % 3 == 0]
            assert all(d.link.connects >= 2 for d in moved)  # they failed over to a live node
            for node in cluster.nodes[1:]:  # each survivor's retained view, once it caught up
                only = f"mqtt://{node.host}:{node.port}"
                wait_for(
                    f"{node.node} retaining every acknowledged generation-2 document",
                    functools.partial(holds_everything, repo, only, key),
                    timeout=60,
                )
        finally:
            for device in devices:
                device.link.stop(1.0)
