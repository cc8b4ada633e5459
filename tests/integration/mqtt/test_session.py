"""The paho session: PUBACK accounting when the broker dies, refused credentials, snapshots."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from linefleet_core.errors import PermanentError, TemporaryError
from linefleet_core.mqttsession import WAKE_EVERY, Outgoing, Session, retained_snapshot
from linefleet_core.mqtturl import BrokerAddress
from tests.support.mosquitto import Mosquitto
from tests.support.waiting import until

pytestmark = pytest.mark.integration


def test_publish_all_says_how_much_was_acknowledged_when_the_broker_dies(
    mosquitto: Mosquitto,
) -> None:
    address = BrokerAddress.parse(mosquitto.url)
    with Session(address, "linefleet-test-dies") as session:
        session.connect()
        assert session.publish_all([Outgoing("linefleet/v1/s/a/desired", b"1")]) == 1
        mosquitto.kill()
        with pytest.raises(TemporaryError, match=r"of 50 message\(s\) acknowledged"):
            session.publish_all(
                [Outgoing(f"linefleet/v1/s/d{i}/desired", b"x" * 1000) for i in range(50)],
                timeout=5.0,
            )


def test_snapshot_sees_only_retained_messages(mosquitto: Mosquitto) -> None:
    address = BrokerAddress.parse(mosquitto.url)
    with Session(address, "linefleet-test-snap") as session:
        session.connect()
        session.publish_all(
            [
                Outgoing("linefleet/v1/s/a/desired", b"A"),
                Outgoing("linefleet/v1/s/b/desired", b"B"),
                Outgoing("linefleet/v1/s/b/events", b"E", retain=False),
            ]
        )
    snap = retained_snapshot(address, "linefleet/v1/+/+/+", "linefleet-test-probe", quiet=0.2)
    assert {t: m.payload for t, m in snap.items()} == {
        "linefleet/v1/s/a/desired": b"A",
        "linefleet/v1/s/b/desired": b"B",
    }


def test_refused_credentials_are_permanent(tmp_path: Path) -> None:
    passwords = tmp_path / "passwd"
    passwords.write_text("")
    with Mosquitto(tmp_path / "b", allow_anonymous=False, password_file=passwords) as broker:
        address = BrokerAddress.parse(f"mqtt://nobody:wrong@{broker.host}:{broker.port}")
        with pytest.raises(PermanentError, match="refused"), Session(address, "x") as session:
            session.connect()


def test_snapshot_of_a_large_retained_set_is_complete(mosquitto: Mosquitto) -> None:
    """The barrier, not a quiet period, ends the snapshot: all 2,000 arrive before it."""
    address = BrokerAddress.parse(mosquitto.url)
    with Session(address, "linefleet-test-many") as session:
        session.connect()
        session.publish_all(
            [Outgoing(f"linefleet/v1/s/d{i}/desired", b"x" * 200) for i in range(2000)]
        )
    snap = retained_snapshot(address, "linefleet/v1/+/+/desired", "linefleet-t-many", quiet=2.0)
    assert len(snap) == 2000


def test_publish_all_runs_meanwhile_once_the_messages_are_handed_over(
    mosquitto: Mosquitto,
) -> None:
    """`meanwhile` runs after every message went to paho and before the PUBACK wait: while it
    runs, another subscriber receives all of them (so the work it does delays none)."""
    address = BrokerAddress.parse(mosquitto.url)
    topics = [f"linefleet/v1/s/m{i}/desired" for i in range(40)]
    seen: list[set[str]] = []
    with (
        Session(
            address, "linefleet-test-other", subscriptions=["linefleet/v1/s/+/desired"]
        ) as other,
        Session(address, "linefleet-test-meanwhile") as session,
    ):
        other.connect()
        session.connect()

        def meanwhile() -> None:
            got: set[str] = set()

            def all_arrived() -> bool:
                got.update(m.topic for m in other.drain(0.05, 0.5))
                return got >= set(topics)

            until(all_arrived)
            seen.append(got)

        sent = session.publish_all([Outgoing(t, b"x") for t in topics], meanwhile=meanwhile)
    assert sent == len(topics)
    assert len(seen) == 1
    assert seen[0] == set(topics)


def test_publish_all_sends_while_it_is_still_handed_messages(mosquitto: Mosquitto) -> None:
    """paho's network thread is woken once per `WAKE_EVERY` messages, not per message: the
    messages handed over so far still go out then (not all at the end), in order, each
    acknowledged."""
    address = BrokerAddress.parse(mosquitto.url)
    count = 2 * WAKE_EVERY + 7
    with Session(address, "linefleet-test-watch", subscriptions=["t/#"]) as watch:
        watch.connect()
        seen: list[bytes] = []

        def arrived() -> int:
            seen.extend(m.payload for m in watch.drain(0.01, 0.05))
            return len(seen)

        def messages() -> Iterator[Outgoing]:
            for i in range(count):
                if i == WAKE_EVERY + 1:  # the first batch reaches the broker meanwhile, woken
                    # (paho's thread wakes by itself only once a second)
                    assert until(lambda: arrived() >= WAKE_EVERY, timeout=0.6, interval=0.01)
                yield Outgoing(f"t/{i % 7}", str(i).encode(), retain=False)

        with Session(address, "linefleet-test-batches") as session:
            session.connect()
            assert session.publish_all(messages()) == count
        assert until(lambda: arrived() == count, timeout=10)
        assert seen == [str(i).encode() for i in range(count)]
