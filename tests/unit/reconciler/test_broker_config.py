"""Generated Mosquitto files: password hashes, ACL rules, config options."""

from __future__ import annotations

import base64
import hashlib

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
