"""The one connection on which a publisher reads and writes desired state.

Every publisher (`linefleet publish`, each `linefleet reconcile`) connects with the same client
id, `FENCE_ID`, reads the retained desired documents and publishes its changes on that one
connection. MQTT 3.1.1 (section 3.1.4) says a broker MUST disconnect a connected client when
another connects with the same client id, so once a second publisher is connected the first
one's connection is closed and nothing more it sends is processed. A publisher's messages are
either processed before the next publisher connects (which then reads them in its snapshot) or
not at all: what a publisher sends was decided on a snapshot no other publisher has changed.
The connection never reconnects on its own (paho would send unacknowledged messages again on
a new connection, after another publisher's): a lost connection fails the publish with a
`TemporaryError` and the next attempt reads the broker again.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from types import TracebackType

from linefleet_core.errors import TemporaryError
from linefleet_core.mqttsession import (
    Expand,
    Outgoing,
    Session,
    Snapshot,
    barrier_topic,
    collect_retained,
    is_wildcard,
    reading_filters,
)
from linefleet_core.mqtturl import BrokerAddress
from reconciler.service.lease import LEASE_TOPIC, Lease

FENCE_ID = "linefleet-publisher"


class Fenced:
    """A publisher's connection: `snapshot()` (once) then `publish_all()`, as a context manager.

    With `claim`, the connection first publishes that lease (retained) and carries a last will
    that cuts it short (`Lease.will`): a publisher killed mid-publish frees the lease within
    seconds. `expand` names
    the exact topics to read when the broker hides retained messages from `filters`' wildcards
    (`linefleet_core.mqttsession.collect_retained`).
    """

    def __init__(
        self,
        address: BrokerAddress,
        filters: list[str],
        *,
        claim: Lease | None = None,
        timeout: float = 5.0,
        expand: Expand | None = None,
    ) -> None:
        self.barrier = barrier_topic(FENCE_ID)
        self.read = False
        self.expand = expand
        filters = reading_filters(address, filters, expand is not None)
        self.claim = claim
        self.timeout = timeout
        self.session = Session(
            address,
            FENCE_ID,
            subscriptions=[*filters, self.barrier],
            reconnect=False,
            will=None if claim is None else Outgoing(LEASE_TOPIC, claim.will().payload()),
        )

    def __enter__(self) -> Fenced:
        self.session.connect(self.timeout)
        if self.claim is not None:
            try:
                self.publish_all([Outgoing(LEASE_TOPIC, self.claim.payload())], self.timeout)
            except BaseException:
                self.session.close()
                raise
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        try:
            if _type is None:
                self.renew()
        finally:
            self.session.close()

    def renew(self) -> None:
        """Renew the claimed lease from now: a pass that went through holds it from its end, not
        only from its start (thousands of documents on a slow uplink may outlast the lease,
        leaving it expired to a standby while this publisher is alive and well). Best effort:
        the pass is done, and a lease not renewed only lets a standby take over."""
        claim = self.claim
        if claim is None or claim.seconds <= 0 or not self.session.connected.is_set():
            return
        if claim.expires - time.time() > claim.seconds * 2 / 3:
            return  # a short pass: the lease written as it started still has most of its time
        with contextlib.suppress(TemporaryError):
            self.session.publish_all(
                [Outgoing(LEASE_TOPIC, claim.renewed().payload())], self.timeout
            )

    def snapshot(self, quiet: float = 0.5, limit: float = 30.0) -> Snapshot:
        """The retained messages under the filters, read on this connection (once: the
        wildcard filters are dropped after the read)."""
        if self.read:
            raise RuntimeError("a fenced connection reads the broker once")
        self.read = True
        found = collect_retained(
            self.session, self.barrier, quiet=quiet, limit=limit, expand=self.expand
        )
        # Read: the wildcards would hand every document this publisher sends back to it
        # (10,000 deliveries, each acknowledged and queued, at 10,000 devices: a third of the
        # publisher's CPU). Exact filters stay (on RabbitMQ, dropping thousands of them costs
        # about what the echo does).
        self.session.unsubscribe([f for f in self.session.subscriptions if is_wildcard(f)])
        self.check()
        return found

    def publish_all(
        self,
        messages: Iterable[Outgoing],
        timeout: float = 30.0,
        *,
        meanwhile: Callable[[], None] | None = None,
    ) -> int:
        self.check()
        return self.session.publish_all(messages, timeout, meanwhile=meanwhile)

    def check(self) -> None:
        """Raise when the connection is gone (another publisher took it over, or the broker
        went away): what was read on it no longer stands."""
        if not self.session.connected.is_set():
            raise TemporaryError(
                f"broker {self.session.address.url}: the publishing connection was closed "
                "(another publisher connected, or the broker went away)",
                delay=1.0,
            )
