"""Where a broker is: `mqtt://HOST[:PORT]` or `mqtts://HOST[:PORT]`, plus credentials.

Shared by every MQTT client of ours (reconciler, edge, trainer). Credentials come from the URL
(`mqtt://user:pass@host`) or from the environment, so they stay out of process listings; a
TLS client certificate and key from `$LINEFLEET_MQTT_CERT` / `$LINEFLEET_MQTT_KEY`.
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

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """`mqtt://HOST[:1883]` or `mqtts://HOST[:8883]`, credentials in the URL or environment."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise UsageError(f"--broker {url!r}: expected mqtt://HOST:PORT or mqtts://HOST:PORT")
        tls = parts.scheme == "mqtts"
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError:
            raise UsageError(f"--broker {url!r}: bad port") from None
        username = unquote(parts.username) if parts.username else os.environ.get(USERNAME_ENV)
        password = unquote(parts.password) if parts.password else os.environ.get(PASSWORD_ENV)
        cert, key = os.environ.get(CERT_ENV) or None, os.environ.get(KEY_ENV) or None
        if bool(cert) != bool(key):
            raise UsageError(f"${CERT_ENV} and ${KEY_ENV} go together (a client certificate)")
        ca = os.environ.get(CA_ENV)
        return cls(parts.hostname, port, tls, username, password, ca, cert, key)

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
