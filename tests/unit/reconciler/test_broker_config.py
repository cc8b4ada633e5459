"""Generated Mosquitto files: password hashes, ACL rules, config options."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from reconciler.broker import (
    BrokerOptions,
    Tls,
    acl_text,
    config_text,
    credentials,
    hash_password,
)


def test_password_hash_is_mosquitto_passwd_format() -> None:
    # produced by `mosquitto_passwd -b` for alice/secret (Mosquitto 2.0.11)
    known = "$7$101$f3/IHDHRYpuzALIw$hl4ijGevkhz88+Wv5r6XLFtO88TjrtQ+rsYkkrVWo/zIIxsdkcumOHaiRqQlbdlnG7tCSkhCnznbnGLIu+mEjw=="
    salt = base64.b64decode(known.split("$")[3])
    assert hash_password("secret", salt) == known
    fresh = hash_password("secret")
    assert fresh.startswith("$7$101$") and fresh != hash_password("secret")
    assert len(hashlib.sha512().digest()) == len(base64.b64decode(fresh.split("$")[4]))


def test_acl_gives_each_device_only_its_own_topics() -> None:
    text = acl_text([("toledo", "b"), ("dresden", "a")])
    block = text.split("\nuser a\n")[1].split("\n\n")[0].splitlines()
    assert block == [
        "topic read linefleet/v1/dresden/a/desired",
        "topic write linefleet/v1/dresden/a/reported",
        "topic write linefleet/v1/dresden/a/events",
        "topic write linefleet/v1/dresden/a/online",
        "topic write linefleet/v1/dresden/a/frames",
    ]
    assert "user linefleet-reconciler\ntopic readwrite linefleet/v1/#" in text
    assert "pattern" not in text and "topic read linefleet/v1/#" not in text


def test_credentials_keep_existing_passwords() -> None:
    first = credentials(["a", "b"])
    again = credentials(["a", "b", "c"], first)
    assert again["a"] == first["a"] and again["b"] == first["b"] and again["c"]


def test_config_has_queue_limits_off_and_tls_when_asked() -> None:
    plain = config_text(BrokerOptions("/etc/linefleet"))
    assert "max_queued_messages 0" in plain and "allow_anonymous false" in plain
    assert "listener 1883 0.0.0.0" in plain and "certfile" not in plain
    tls = config_text(
        BrokerOptions("/etc/lf", port=None, tls=Tls("/c.pem", "/k.pem", "/ca.pem", 8883, True))
    )
    assert "listener 1883" not in tls
    assert "listener 8883 0.0.0.0\ncertfile /c.pem\nkeyfile /k.pem" in tls
    assert "require_certificate true" in tls


def test_site_bridges_get_their_own_central_account_and_a_bridge_block() -> None:
    from reconciler.broker import Bridge

    central = acl_text([("toledo", "t1")], bridge_sites=["toledo"])
    block = central.split("\nuser linefleet-bridge-toledo\n")[1].split("\n\n")[0].splitlines()
    assert block[0] == "topic read linefleet/v1/toledo/+/desired"
    assert "topic write linefleet/v1/toledo/+/reported" in block
    assert "topic write $SYS/broker/connection/linefleet-bridge-toledo/state" in block
    site = acl_text([("toledo", "t1")], None)
    assert "linefleet-reconciler" not in site and "bridge" not in site
    cfg = config_text(
        BrokerOptions("/etc/lf", bridge=Bridge("toledo", "centre.example", 1883, "u", "p"))
    )
    assert "address centre.example:1883" in cfg and "cleansession false" in cfg
    assert "topic linefleet/v1/toledo/+/desired in 1" in cfg
    assert "topic linefleet/v1/toledo/+/reported out 1" in cfg


def test_device_and_bridge_accounts_are_bound_to_their_own_client_id() -> None:
    import json

    from reconciler.broker import client_ids, dynsec_text

    bound = client_ids([("toledo", "t1")], ["toledo"])
    assert bound == {
        "t1": "linefleet-device-t1",
        "linefleet-bridge-toledo": "linefleet-bridge-toledo",
    }
    creds = {"t1": "pw", "linefleet-bridge-toledo": "pw2", "linefleet-reconciler": "pw3"}
    doc = json.loads(dynsec_text(creds, bound))
    assert [(c["username"], c["clientid"]) for c in doc["clients"]] == [
        ("linefleet-bridge-toledo", "linefleet-bridge-toledo"),
        ("t1", "linefleet-device-t1"),
    ]  # the reconciler (several sessions) is not bound: it falls through to the password file
    salt = base64.b64decode(doc["clients"][1]["salt"])
    digest = hashlib.pbkdf2_hmac("sha512", b"pw", salt, doc["clients"][1]["iterations"])
    assert doc["clients"][1]["password"] == base64.b64encode(digest).decode()
    assert doc["roles"] == [] and doc["defaultACLAccess"]["publishClientSend"] is False
    cfg = config_text(BrokerOptions("/etc/lf", plugin="/usr/lib/x/mosquitto_dynamic_security.so"))
    assert "plugin_opt_config_file /etc/lf/dynamic-security.json" in cfg
    assert "\nuser mosquitto\n" in cfg


def test_client_certificates_are_the_account_and_the_client_id() -> None:
    tls = Tls("/c.pem", "/k.pem", "/ca.pem", 8883, client_certs=True, operator_port=8884)
    cfg = config_text(BrokerOptions("/etc/lf", port=None, tls=tls))
    devices, operators = cfg.split("listener 8883 0.0.0.0\n")[1].split("listener 8884 0.0.0.0\n")
    assert "require_certificate true\nuse_identity_as_username true" in devices
    assert "use_username_as_clientid true" in devices and "cafile /ca.pem" in devices
    assert "require_certificate" not in operators and "certfile /c.pem" in operators


def test_a_loopback_test_broker_is_anonymous_and_keeps_the_queue_limits_off() -> None:
    cfg = config_text(BrokerOptions("/tmp/x", "/tmp/x/data", 1999, "127.0.0.1", anonymous=True))
    assert "allow_anonymous true" in cfg and "password_file" not in cfg and "plugin" not in cfg
    assert "max_queued_messages 0" in cfg and "listener 1999 127.0.0.1" in cfg


def test_a_nats_cluster_node_needs_its_name_listen_and_routes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from linefleet.cli import main
    from tests.support import minifleet

    repo = tmp_path / "fleet"
    minifleet.write_minifleet(repo)
    base = ["broker", "config", "--engine", "nats", "--repo", str(repo), "--out", str(tmp_path)]
    assert main([*base, "--routes", "h2:6222"]) == 2
    assert "--cluster-listen" in capsys.readouterr().err
    node = ["--server-name", "n1", "--cluster-listen", "h1:6222", "--routes", "h2:6222"]
    assert main([*base, *node, "--replicas", "3"]) == 2
    assert "more than the cluster's 2 nodes" in capsys.readouterr().err
    assert main([*base, *node]) == 0
    text = (tmp_path / "nats.conf").read_text()
    assert "stream_replicas: 2, consumer_replicas: 2" in text
    assert 'server_name: "n1"' in text and "@h2:6222" in text


def test_rabbitmq_definitions_give_each_device_its_own_routing_keys_and_queues() -> None:
    import json

    from reconciler.broker import rabbitmq_definitions

    creds = {"linefleet-reconciler": "r", "t-1": "p"}
    doc = json.loads(rabbitmq_definitions([("toledo", "t-1")], creds))
    topics = {t["user"]: t for t in doc["topic_permissions"]}
    assert topics["t-1"]["read"] == r"^(linefleet\.v1\.toledo\.t\-1\.desired)$"
    assert r"linefleet\.v1\.toledo\.t\-1\.reported" in topics["t-1"]["write"]
    assert "desired" not in topics["t-1"]["write"]
    perms = {p["user"]: p for p in doc["permissions"]}
    assert perms["t-1"]["configure"] == r"^mqtt-subscription-linefleet\-device\-t\-1qos[01]$"
