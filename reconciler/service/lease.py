"""The publish lease: which of several `linefleet reconcile` processes does the publishing.

A retained message on `LEASE_TOPIC` names the holder, the generation it publishes and until
when the lease holds. Each tick, a reconciler reads it (`decide`, pure) and publishes only when
the lease is free, expired, its own, or held for an older generation (a reconciler on a newer
commit takes over from one on a stale checkout); otherwise it stands by and only records device
messages. The holder renews the lease on every publish, as the pass starts and again when it
ends (a pass of thousands of documents on a slow link may outlast the lease); its publishing
connection carries a last will that cuts the lease short (`Lease.will`: still the holder's,
but only until `WILL_GRACE` seconds after the connection began), so a holder killed mid-publish
is replaced within seconds by another reconciler, and one that dies between publishes when the
lease expires. The will does not clear the lease outright: a broker also publishes the will of
a connection that is taken over or whose DISCONNECT was lost (Mosquitto does, on the holder's
own next connection with the fenced client id), and a cleared lease would then hand a standby
the fleet while its holder is alive and about to write its lease again.

The lease only decides who does the work. Safety does not rest on it (clocks may disagree,
two reconcilers may both see it free): `reconciler.service.fence` makes each publish read and
write on one connection no other publisher can share, and a publish never replaces a retained
document of a newer generation (`reconciler.service.publish.plan_publish`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace

from linefleet_core.wire import TOPIC_ROOT

LEASE_TOPIC = f"{TOPIC_ROOT}/_lease/publisher"
"""Retained, QoS 1; outside `linefleet/v1/<site>/<device>/<channel>`: no device reads it."""

WILL_GRACE = 5.0
"""Seconds from a publishing connection's start for which its will still holds the lease: a
will fired while the holder lives (its own next connection took this one over) is overwritten
by the holder's next claim long before then; a holder killed later in a pass is replaced at once."""


@dataclass(frozen=True)
class Lease:
    holder: str
    """The reconciler's `--name`."""
    generation: int
    """The generation the holder publishes."""
    expires: float
    """Seconds since the epoch (the holder's clock)."""
    seconds: float = field(default=0.0, compare=False)
    """How long the holder's lease lasts from each renewal (0: not known, as for a lease read
    from the broker); not on the wire."""

    def renewed(self, now: float | None = None) -> Lease:
        """The same lease, running `seconds` from `now` (itself when `seconds` is not known)."""
        if self.seconds <= 0:
            return self
        return replace(self, expires=(time.time() if now is None else now) + self.seconds)

    def will(self, now: float | None = None) -> Lease:
        """The lease a publishing connection leaves as its last will, from the connection's
        start `now`: the same holder and generation, held `WILL_GRACE` seconds (never beyond
        this lease's own expiry)."""
        start = time.time() if now is None else now
        return replace(self, expires=min(self.expires, start + WILL_GRACE))

    def payload(self) -> bytes:
        body = {"holder": self.holder, "generation": self.generation, "expires": self.expires}
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def parse(cls, payload: bytes) -> Lease | None:
        """The lease in a retained payload; None for an empty (released) or unreadable one."""
        try:
            doc = json.loads(payload) if payload else None
        except (ValueError, RecursionError):
            return None
        if not isinstance(doc, dict):
            return None
        holder, generation, expires = doc.get("holder"), doc.get("generation"), doc.get("expires")
        if not isinstance(holder, str) or type(generation) is not int:
            return None
        if not isinstance(expires, int | float) or isinstance(expires, bool):
            return None
        return cls(holder, generation, float(expires))


def decide(held: Lease | None, me: str, generation: int, now: float) -> str | None:
    """None when `me`, about to publish `generation`, may claim the lease; else why not."""
    if held is None or held.holder == me or held.expires <= now or held.generation < generation:
        return None
    return f"standing by: {held.holder} holds the publish lease (generation {held.generation})"
