"""plan_publish never sends anything older than what the broker holds (issue 17)."""

from __future__ import annotations

import json

import pytest

from linefleet_core.errors import PermanentError
from reconciler.service.publish import LoadedRevision, Signed, plan_publish, refuse_older
from tests.support import minifleet

KEY = "k" * 16


def retained(generation: int, key_id: str = KEY, hash_: str = "h") -> bytes:
    body = {"generation": generation, "content_hash": hash_, "signature": {"key_id": key_id}}
    return json.dumps(body).encode()


def test_a_device_a_newer_fleet_added_is_not_pruned_by_an_older_one() -> None:
    ours = {"a": Signed("s", "a", 5, "h", b"{}")}
    held = {
        "linefleet/v1/s/a/desired": retained(5),
        "linefleet/v1/s/added/desired": retained(6),  # a newer fleet added it
        "linefleet/v1/s/same/desired": retained(5, hash_="x"),  # same generation: no tombstone
        "linefleet/v1/s/gone/desired": retained(4),  # older: ours removed it
        "linefleet/v1/s/forged/desired": retained(2**62, key_id="o" * 16),  # another key's
    }
    plan = plan_publish(ours, held, KEY, generation=5)
    assert plan.prune == ("linefleet/v1/s/forged/desired", "linefleet/v1/s/gone/desired")
    assert plan.stale_prune == (
        ("linefleet/v1/s/added/desired", 6),
        ("linefleet/v1/s/same/desired", 5),
    )
    revision = LoadedRevision(minifleet.load_docs(minifleet.documents())[0], "c" * 40, 5)
    with pytest.raises(PermanentError, match="generation 6 for s/added, newer than 5"):
        refuse_older(plan, revision)


def test_without_a_generation_prunes_stay_as_they_were() -> None:
    plan = plan_publish({}, {"linefleet/v1/s/x/desired": retained(9)}, KEY)
    assert plan.prune == ("linefleet/v1/s/x/desired",) and plan.stale_prune == ()
