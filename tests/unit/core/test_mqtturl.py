"""Broker URLs: one node or a cluster's nodes, and the failover order along them."""

from __future__ import annotations

import re

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from linefleet_core.errors import UsageError
from linefleet_core.mqtturl import BrokerAddress


def test_one_node_keeps_its_defaults() -> None:
    address = BrokerAddress.parse("mqtts://user:p%40ss@broker.example")
    assert (address.host, address.port, address.tls) == ("broker.example", 8883, True)
    assert (address.username, address.password, address.others) == ("user", "p@ss", ())
    assert address.url == "mqtts://broker.example:8883"  # never the password


def test_a_cluster_lists_every_node_in_order() -> None:
    address = BrokerAddress.parse("mqtt://u:pw@a:1884,b,[::1]:1999")
    assert address.endpoints == (("a", 1884), ("b", 1883), ("::1", 1999))
    assert (address.username, address.password) == ("u", "pw")
    assert address.url == "mqtt://a:1884,b:1883,::1:1999"
    assert [address.after(*node) for node in address.endpoints] == [
        ("b", 1883),
        ("::1", 1999),
        ("a", 1884),
    ]
    assert address.after("elsewhere", 1) == ("a", 1884)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mqtt://a:1883,,b:1883", "expected mqtt://HOST:PORT"),
        ("mqtt://a:1883,b:port", "bad port in 'b:port'"),
        ("mqtt://a:1883,a:1883", "a node is listed twice"),
        ("http://a:1883,b:1883", "expected mqtt://HOST:PORT"),
        ("mqtt://", "expected mqtt://HOST:PORT"),
    ],
)
def test_bad_cluster_urls_are_usage_errors(url: str, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        BrokerAddress.parse(url)


def paho_client(host: str, port: int) -> mqtt.Client:
    """A real paho client that knows where to connect (nothing is opened)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="t")
    client.connect_async(host, port)
    return client


def test_fail_over_moves_a_client_to_the_next_node_and_round() -> None:
    address = BrokerAddress.parse("mqtt://a:1,b:2,c:3")
    client = paho_client("a", 1)
    seen = []
    for _ in range(4):
        address.fail_over(client)
        seen.append((client.host, client.port))
    assert seen == [("b", 2), ("c", 3), ("a", 1), ("b", 2)]
    single = BrokerAddress.parse("mqtt://a:1")
    lone = paho_client("a", 1)
    single.fail_over(lone)
    assert (lone.host, lone.port) == ("a", 1)


def test_retained_reads_come_from_the_url_query() -> None:
    assert BrokerAddress.parse("mqtt://a:1").retained == "auto"
    exact = BrokerAddress.parse("mqtt://u:p@a:1,b:2?retained=exact")
    assert (exact.retained, exact.url, exact.username) == ("exact", "mqtt://a:1,b:2", "u")
    for bad in ("mqtt://a:1?retained=wild", "mqtt://a:1?qos=2"):
        with pytest.raises(UsageError, match=re.escape("expected retained=auto|exact")):
            BrokerAddress.parse(bad)
