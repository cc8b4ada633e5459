"""TLS in the configurations `linefleet broker config --engine nats|rabbitmq` writes, on a real
nats-server and a real RabbitMQ node started from them (docs/protocol.md, 14).

A throw-away CA and server certificate (tests/support/pki.py); linefleet's `publish` and
`status` reach the broker over `mqtts://` with the reconciler's account and the CA in
`$LINEFLEET_MQTT_CA`; without that CA the certificate is not trusted (exit 1), and plain MQTT
gets nowhere on the TLS listener.
"""

from __future__ import annotations

import json
import socket
import ssl
from pathlib import Path

import pytest

from linefleet.cli import main
from linefleet_core.mqtturl import CA_ENV, CERT_ENV, KEY_ENV
from linefleet_core.signing import SigningKey
from reconciler.broker import NATS_CONF, RABBITMQ_CONF
from tests.support import minifleet
from tests.support.brokers import require
from tests.support.nats import GeneratedNats
from tests.support.pki import write_pki
from tests.support.rabbitmq import RabbitMQ
from tests.support.server import free_port
from tests.support.waiting import until

pytestmark = pytest.mark.integration


def configure(tmp_path: Path, engine: str, *more: str) -> tuple[Path, Path, Path, dict[str, str]]:
    """(fleet repository, signing key, CA file, credentials): `broker config --engine ENGINE`
    with the test PKI's server certificate, into tmp_path/broker."""
    repo = tmp_path / "fleet"
    minifleet.write_minifleet(repo)
    minifleet.init_repo(repo)
    minifleet.commit_all(repo, "fleet")
    key, _ = SigningKey.generate().write(tmp_path / "keys")
    ca, cert, server_key = write_pki(tmp_path / "pki")
    out = tmp_path / "broker"
    argv = ["broker", "config", "--engine", engine, "--repo", str(repo), "--out", str(out)]
    argv += ["--bind", "127.0.0.1", "--tls-cert", str(cert), "--tls-key", str(server_key)]
    assert main([*argv, "--tls-ca", str(ca), *more]) == 0
    return repo, key, ca, json.loads((out / "credentials.json").read_text())


def over_tls(
    port: int,
    repo: Path,
    key: Path,
    creds: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """publish and status over mqtts:// with the reconciler's account; refused without the CA;
    nothing over plain MQTT."""
    account = f"linefleet-reconciler:{creds['linefleet-reconciler']}@127.0.0.1:{port}"
    publish = ["publish", "--repo", str(repo), "--signing-key", str(key)]
    publish += ["--artifact-base", "file:///x", "--broker"]

    monkeypatch.delenv(CA_ENV, raising=False)
    assert main([*publish, f"mqtts://{account}"]) == 1  # the system's CAs do not know ours
    err = capsys.readouterr().err
    assert "TLS certificate not trusted" in err and "Traceback" not in err
    assert main([*publish, f"mqtt://{account}"]) == 4  # plain MQTT on the TLS listener
    capsys.readouterr()

    monkeypatch.setenv(CA_ENV, str(repo.parent / "pki" / "ca.pem"))  # (the test's CA)
    # a fresh NATS server may refuse sessions for a moment (JetStream starting): exit 4, retried
    assert until(lambda: main([*publish, f"mqtts://{account}"]) != 4, 60, 1.0)
    out = capsys.readouterr().out
    assert "3 published" in out, out
    assert main(["status", "--broker", f"mqtts://{account}", "--repo", str(repo)]) == 0
    assert "3 device(s)" in capsys.readouterr().out


def test_a_generated_nats_cluster_serves_linefleet_over_tls_and_routes_over_mutual_tls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two nodes from `broker config --engine nats`, with certificates from `linefleet keys`
    (`cert --server --peer`: a node's certificate opens its routes too): MQTT over TLS on
    each, and routes that take TLS only. linefleet publishes through node 0 and `status` on
    node 1 sees the whole fleet: the retained documents crossed the TLS routes."""
    require("nats-cluster")
    repo = tmp_path / "fleet"
    minifleet.write_minifleet(repo)
    minifleet.init_repo(repo)
    minifleet.commit_all(repo, "fleet")
    key, _ = SigningKey.generate().write(tmp_path / "keys")
    pki = tmp_path / "pki"
    assert main(["keys", "ca", "--out", str(pki)]) == 0
    node_cert = ["keys", "cert", "--ca", str(pki), "--out", str(pki), "--server", "--peer"]
    assert main([*node_cert, "--host", "127.0.0.1", "node"]) == 0
    tls_ports, route_ports = [free_port(), free_port()], [free_port(), free_port()]
    creds_file = tmp_path / "credentials.json"
    confs = []
    for i in (0, 1):
        out = tmp_path / f"node{i}"
        argv = ["broker", "config", "--engine", "nats", "--repo", str(repo), "--out", str(out)]
        argv += ["--bind", "127.0.0.1", "--port", "0", "--tls-port", str(tls_ports[i])]
        argv += ["--tls-cert", str(pki / "node.pem"), "--tls-key", str(pki / "node.key")]
        argv += ["--nats-port", str(free_port()), "--data-dir", str(tmp_path / f"js{i}")]
        argv += ["--server-name", f"n{i}", "--cluster-listen", f"127.0.0.1:{route_ports[i]}"]
        argv += ["--routes", f"127.0.0.1:{route_ports[1 - i]}", "--credentials", str(creds_file)]
        assert main(argv) == 2  # routes over TLS need the CA the nodes verify each other with
        assert "needs --tls-ca" in capsys.readouterr().err
        assert not out.exists() and (i == 1 or not creds_file.exists())
        assert main([*argv, "--tls-ca", str(pki / "ca.pem")]) == 0
        confs.append(out / NATS_CONF)
    capsys.readouterr()
    creds = json.loads(creds_file.read_text())
    rec = f"linefleet-reconciler:{creds['linefleet-reconciler']}"
    nodes = [GeneratedNats(tmp_path / f"run{i}", confs[i], tls_ports[i]) for i in (0, 1)]
    try:
        for node in nodes:
            node.start()
        # a route port takes TLS only, and only with a certificate from the CA
        trusting = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        with (
            socket.create_connection(("127.0.0.1", route_ports[0]), timeout=10) as raw,
            pytest.raises(ssl.SSLError, match="CERTIFICATE"),
            trusting.wrap_socket(raw, server_hostname="127.0.0.1") as route,
        ):
            route.recv(1)  # (TLS 1.3: the node's verdict on the client arrives after the handshake)
        over_tls(tls_ports[0], repo, key, creds, monkeypatch, capsys)
        status = ["status", "--repo", str(repo), "--broker", f"mqtts://{rec}@127.0.0.1:"]
        status[-1] += str(tls_ports[1])
        assert main(status) == 0
        assert "3 device(s)" in capsys.readouterr().out
    finally:
        for node in nodes:
            node.stop()


def test_a_generated_nats_config_can_require_a_client_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    require("nats-cluster")
    port = free_port()
    more = ["--port", "0", "--tls-port", str(port), "--nats-port", str(free_port())]
    more += ["--require-client-cert", "--data-dir", str(tmp_path / "js")]
    repo, key, ca, creds = configure(tmp_path, "nats", *more)
    capsys.readouterr()
    assert "verify: true" in (tmp_path / "broker" / NATS_CONF).read_text()
    account = f"linefleet-reconciler:{creds['linefleet-reconciler']}@127.0.0.1:{port}"
    publish = ["publish", "--repo", str(repo), "--signing-key", str(key)]
    publish += ["--artifact-base", "file:///x", "--broker", f"mqtts://{account}"]
    monkeypatch.setenv(CA_ENV, str(ca))
    with GeneratedNats(tmp_path / "nats", tmp_path / "broker" / NATS_CONF, port):
        monkeypatch.setenv(CERT_ENV, str(ca.parent / "client.pem"))
        monkeypatch.setenv(KEY_ENV, str(ca.parent / "client.key"))
        assert until(lambda: main(publish) != 4, 60, 1.0)  # (JetStream starting: retried)
        assert "3 published" in capsys.readouterr().out
        monkeypatch.delenv(CERT_ENV)
        monkeypatch.delenv(KEY_ENV)
        # no client certificate: NATS ends the TLS session after the handshake (an alert
        # paho only logs): a configuration error naming what to set, not an outage
        assert main(publish) == 1
        err = capsys.readouterr().err
        assert "requires a client certificate" in err and CERT_ENV in err, err
        assert "Traceback" not in err
        # a certificate from a CA the broker does not trust
        other, _, _ = write_pki(tmp_path / "other-pki")
        monkeypatch.setenv(CERT_ENV, str(other.parent / "client.pem"))
        monkeypatch.setenv(KEY_ENV, str(other.parent / "client.key"))
        assert main(publish) == 1
        err = capsys.readouterr().err
        assert "refused this client's TLS certificate" in err and "Traceback" not in err, err


def test_nats_refuses_a_plain_port_beside_tls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "fleet"
    minifleet.write_minifleet(repo)
    argv = ["broker", "config", "--engine", "nats", "--repo", str(repo)]
    argv += ["--out", str(tmp_path / "out"), "--tls-cert", "c.pem", "--tls-key", "k.pem"]
    assert main(argv) == 2  # a usage error: --port defaults to 1883, NATS has one MQTT listener
    err = capsys.readouterr().err
    assert "one MQTT listener" in err and "--port 0" in err and "Traceback" not in err


def test_a_generated_rabbitmq_config_serves_linefleet_over_tls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    require("rabbitmq")
    node = RabbitMQ(tmp_path / "rabbit")  # its plain listener stays: the readiness check
    tls_port = free_port()
    more = ["--port", str(node.port), "--amqp-port", str(node.amqp_port)]
    repo, key, _, creds = configure(tmp_path, "rabbitmq", *more, "--tls-port", str(tls_port))
    capsys.readouterr()
    node.config = (tmp_path / "broker" / RABBITMQ_CONF).read_text()
    assert f"mqtt.listeners.ssl.default = 127.0.0.1:{tls_port}" in node.config
    with node:
        over_tls(tls_port, repo, key, creds, monkeypatch, capsys)
