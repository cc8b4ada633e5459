"""Where a broker is: `mqtt://HOST[:PORT]` or `mqtts://HOST[:PORT]`, plus credentials.

A clustered broker is a list of nodes, `mqtt://HOST1:PORT1,HOST2:PORT2,...`: a client connects
to the first that answers and, when its node goes away, reconnects to the next one in the list
(`BrokerAddress.endpoints`, `fail_over()`); the persistent session lives in the cluster, so it
resumes there. `?retained=exact` tells the reconciler's readers to read retained state by
exact-topic subscriptions only (a broker that hides retained messages from wildcard filters;
`linefleet_core.mqttsession.collect_retained`); by default (`auto`) they find that out themselves.
Shared by every MQTT client of ours (reconciler, edge, trainer). Credentials come
from the URL (`mqtt://user:pass@host`) or from the environment, so they stay out of process
listings; a TLS client certificate and key from `$LINEFLEET_MQTT_CERT` / `$LINEFLEET_MQTT_KEY`.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from linefleet_core.errors import UsageError

USERNAME_ENV = "LINEFLEET_MQTT_USERNAME"
PASSWORD_ENV = "LINEFLEET_MQTT_PASSWORD"
CA_ENV = "LINEFLEET_MQTT_CA"
CERT_ENV = "LINEFLEET_MQTT_CERT"
KEY_ENV = "LINEFLEET_MQTT_KEY"
RETAINED_READS = ("auto", "exact")


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    cert_file: str | None = None
    """A TLS client certificate (`linefleet keys cert`): the account on a `--tls` broker."""
    key_file: str | None = None
    others: tuple[tuple[str, int], ...] = ()
    """The cluster's other nodes, in the order a client fails over to them."""
    retained: str = "auto"
    """How the reconciler reads retained state: `auto` (wildcards, exact topics if the broker
    hides retained messages from them) or `exact` (exact topics only): `?retained=` in the URL."""

    @property
    def endpoints(self) -> tuple[tuple[str, int], ...]:
        """Every node: `(host, port)` first, then `others`."""
        return ((self.host, self.port), *self.others)

    @property
    def url(self) -> str:
        nodes = ",".join(f"{h}:{p}" for h, p in self.endpoints)
        return f"{'mqtts' if self.tls else 'mqtt'}://{nodes}"

    def after(self, host: str, port: int) -> tuple[str, int]:
        """The node to try after `host:port` (the first again after the last)."""
        nodes = self.endpoints
        try:
            index = nodes.index((host, port))
        except ValueError:
            return nodes[0]
        return nodes[(index + 1) % len(nodes)]

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """`mqtt://HOST[:1883]` or `mqtts://HOST[:8883]`, credentials in the URL or environment;
        a cluster as `mqtt://HOST1[:PORT1],HOST2[:PORT2],...`; `?retained=exact|auto`."""
        url, _, query = url.partition("?")
        retained = "auto"
        for pair in filter(None, query.split("&")):
            name, _, value = pair.partition("=")
            if name != "retained" or value not in RETAINED_READS:
                raise UsageError(
                    f"--broker {url}?{query}: unknown option {pair!r} "
                    f"(expected retained={'|'.join(RETAINED_READS)})"
                )
            retained = value
        scheme, sep, rest = url.partition("://")
        creds, at, nodes = rest.split("/", 1)[0].rpartition("@")
        names = nodes.split(",")
        if scheme not in ("mqtt", "mqtts") or not sep or not all(names):
            raise UsageError(f"--broker {url!r}: expected mqtt://HOST:PORT or mqtts://HOST:PORT")
        tls = scheme == "mqtts"
        endpoints = []
        for name in names:
            parts = urlsplit(f"{scheme}://{creds}{at}{name}")
            if not parts.hostname:
                raise UsageError(f"--broker {url!r}: {name!r} names no host")
            try:
                endpoints.append((parts.hostname, parts.port or (8883 if tls else 1883)))
            except ValueError:
                raise UsageError(f"--broker {url!r}: bad port in {name!r}") from None
        if len(set(endpoints)) != len(endpoints):
            raise UsageError(f"--broker {url!r}: a node is listed twice")
        username = unquote(parts.username) if parts.username else os.environ.get(USERNAME_ENV)
        password = unquote(parts.password) if parts.password else os.environ.get(PASSWORD_ENV)
        cert, key = os.environ.get(CERT_ENV) or None, os.environ.get(KEY_ENV) or None
        if bool(cert) != bool(key):
            raise UsageError(f"${CERT_ENV} and ${KEY_ENV} go together (a client certificate)")
        ca = os.environ.get(CA_ENV)
        (host, port), *others = endpoints
        return cls(host, port, tls, username, password, ca, cert, key, tuple(others), retained)

    def fail_over(self, client: Any) -> None:
        """Point a paho-mqtt client that lost (or could not reach) its node at the next one, so
        its next `reconnect()` goes there; with one node, nothing changes."""
        if not self.others:
            return
        host, port = self.after(client.host, client.port)
        # paho's `host`/`port` setters refuse while a lost connection is not yet torn down; the
        # attributes are what `reconnect()` reads.
        client._host, client._port = host, port

    def configure(self, client: Any) -> None:
        """Give a paho-mqtt client this broker's credentials and TLS settings (before connect)."""
        if self.username:
            client.username_pw_set(self.username, self.password)
        if self.tls:
            client.tls_set(
                ca_certs=self.ca_file,
                certfile=self.cert_file,
                keyfile=self.key_file,
                cert_reqs=ssl.CERT_REQUIRED,
            )
