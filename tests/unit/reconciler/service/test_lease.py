"""The publish lease (pure): who may publish, and the lease's wire form."""

from __future__ import annotations

import pytest

from reconciler.service.lease import WILL_GRACE, Lease, decide

NOW = 1_000_000.0


@pytest.mark.parametrize(
    ("held", "me", "generation", "free"),
    [
        (None, "a", 5, True),  # nobody holds it
        (Lease("a", 5, NOW + 10), "a", 5, True),  # mine: renew
        (Lease("a", 5, NOW + 10), "a", 3, True),  # mine, even for an older commit (publish refuses)
        (Lease("b", 5, NOW + 10), "a", 5, False),  # another's, alive, same generation
        (Lease("b", 5, NOW + 10), "a", 4, False),  # another's, for a newer generation
        (Lease("b", 5, NOW - 1), "a", 4, True),  # expired
        (Lease("b", 5, NOW), "a", 5, True),  # expires now
        (Lease("b", 5, NOW + 10), "a", 6, True),  # a stale holder: the newer commit takes over
    ],
)
def test_who_may_publish(held: Lease | None, me: str, generation: int, free: bool) -> None:
    why = decide(held, me, generation, NOW)
    assert (why is None) is free
    if held is not None and not free:
        assert why == f"standing by: b holds the publish lease (generation {held.generation})"


def test_a_lease_round_trips_and_garbage_reads_as_free() -> None:
    lease = Lease("plant-a", 42, NOW + 30.5)
    assert Lease.parse(lease.payload()) == lease
    for junk in (b"", b"not json", b"[1]", b'{"holder": 1, "generation": 2, "expires": 3}',
                 b'{"holder": "a", "generation": true, "expires": 3}',
                 b'{"holder": "a", "generation": 2, "expires": "soon"}',
                 b'{"holder": "a", "generation": 2, "expires": false}', b"[" * 100_000):  # fmt: skip
        assert Lease.parse(junk) is None, junk[:40]


def test_a_renewed_lease_runs_its_length_from_the_renewal() -> None:
    lease = Lease("plant-a", 42, NOW + 20, seconds=20)
    later = lease.renewed(NOW + 15)
    assert (later.holder, later.generation, later.expires) == ("plant-a", 42, NOW + 35)
    assert Lease.parse(later.payload()) == later  # the length is not on the wire
    read = Lease.parse(lease.payload())
    assert read is not None and read.renewed(NOW + 15) is read  # length unknown: unchanged


def test_a_connections_will_keeps_the_lease_its_holders_for_seconds_only() -> None:
    """The will a publishing connection leaves: still the holder's (a will fired while the
    holder lives hands nothing to a standby), cut to `WILL_GRACE` from the connection's start,
    never beyond the lease's own expiry."""
    lease = Lease("plant-a", 42, NOW + 30, seconds=30)
    will = lease.will(NOW)
    assert (will.holder, will.generation, will.expires) == ("plant-a", 42, NOW + WILL_GRACE)
    assert decide(will, "plant-b", 42, NOW + 1) is not None  # fired at once: still held
    assert decide(will, "plant-b", 42, NOW + WILL_GRACE) is None  # later: free
    assert Lease("plant-a", 42, NOW + 1).will(NOW).expires == NOW + 1
