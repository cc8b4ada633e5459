"""`reconciler.service.publish` against a real Mosquitto and a real git repository."""

from __future__ import annotations

import gc
import json
import math
from pathlib import Path

import pytest

from linefleet_core.errors import FindingsError, PermanentError, TemporaryError
from linefleet_core.mqtturl import BrokerAddress
from linefleet_core.signing import SigningKey, verify, verify_document
from linefleet_core.wire import Applied, Removal, online_payload
from reconciler.service import publish as publish_module
from reconciler.service.compile import CompileError
from reconciler.service.forkwork import spare_core
from reconciler.service.marker import MARKER_TOPIC
from reconciler.service.publish import Result, load_revision, publish
from tests.integration.mqtt.conftest import ack, retained, send
from tests.support import minifleet
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.waiting import until

pytestmark = pytest.mark.integration
DESIRED = "linefleet/v1/+/+/desired"
ONLINE = online_payload(True)


def run(repo: Path, broker: Mosquitto, key: SigningKey, rev: str = "HEAD") -> Result:
    address = BrokerAddress.parse(broker.url)
    return publish(load_revision(repo, rev), address, key, repo.resolve().as_uri(), quiet=0.2)


def test_publish_then_nothing_the_second_time(
    fleet_repo: Path, mosquitto: Mosquitto, key: SigningKey
) -> None:
    first = run(fleet_repo, mosquitto, key)
    assert (first.published, first.unchanged, first.pruned, first.devices) == (3, 0, 0, 3)
    assert first.generation == 1
    held = retained(mosquitto, DESIRED)
    assert set(held) == {
        "linefleet/v1/toledo/toledo-edge-1/desired",
        "linefleet/v1/toledo/toledo-edge-2/desired",
        "linefleet/v1/dresden/dresden-edge-1/desired",
    }
    doc = verify(
        held["linefleet/v1/toledo/toledo-edge-2/desired"],
        {key.key_id: key.public},
        device="toledo-edge-2",
    )
    assert doc.commit == first.commit
    artifact = doc.spec.lines[0].serving.artifact.url
    assert artifact == (fleet_repo.resolve() / "artifacts/surface-classifier-2.onnx").as_uri()

    second = run(fleet_repo, mosquitto, key)
    assert (second.published, second.unchanged, second.pruned) == (0, 3, 0)
    assert retained(mosquitto, DESIRED) == held  # byte-identical: nothing was re-sent


def test_a_line_change_republishes_only_its_devices_and_removal_prunes(
    fleet_repo: Path, mosquitto: Mosquitto, key: SigningKey
) -> None:
    run(fleet_repo, mosquitto, key)
    before = retained(mosquitto, DESIRED)
    minifleet.edit_rollout(fleet_repo, "toledo/line-2", candidate=None)
    minifleet.commit_all(fleet_repo, "toledo/line-2: stop shadowing @3")
    result = run(fleet_repo, mosquitto, key)
    assert result.published_devices == ["toledo/toledo-edge-1", "toledo/toledo-edge-2"]
    assert (result.unchanged, result.generation) == (1, 2)
    after = retained(mosquitto, DESIRED)
    dresden = "linefleet/v1/dresden/dresden-edge-1/desired"
    assert after[dresden] == before[dresden]
    assert json.loads(after[dresden])["generation"] == 1  # untouched devices keep theirs
    assert json.loads(after["linefleet/v1/toledo/toledo-edge-2/desired"])["generation"] == 2

    gone = "linefleet/v1/toledo/toledo-edge-2"
    last = after[f"{gone}/desired"]
    send(mosquitto, [(f"{gone}/reported", ack(last), True), (f"{gone}/online", ONLINE, True)])
    minifleet.device_file(fleet_repo, "toledo", "toledo-edge-2").unlink()
    minifleet.commit_all(fleet_repo, "retire toledo-edge-2")
    result = run(fleet_repo, mosquitto, key)
    assert (result.published, result.pruned, result.devices) == (0, 1, 2)
    assert result.pruned_topics == [f"{gone}/desired"]
    held = retained(mosquitto, f"{gone}/#")
    assert sorted(held) == [f"{gone}/desired"]  # its reported and online are cleared
    removal = verify_document(
        held[f"{gone}/desired"], {key.key_id: key.public}, device="toledo-edge-2",
        held=Applied(generation=2, content_hash=json.loads(last)["content_hash"]),
    )  # fmt: skip
    assert isinstance(removal, Removal) and removal.generation == 3  # signed, newer
    assert run(fleet_repo, mosquitto, key).pruned == 0  # the tombstone stays as it is


def test_retained_state_survives_a_broker_restart(
    fleet_repo: Path, mosquitto: Mosquitto, key: SigningKey
) -> None:
    run(fleet_repo, mosquitto, key)
    mosquitto.restart()
    assert run(fleet_repo, mosquitto, key).published == 0


def test_a_new_signing_key_re_signs_everything(
    fleet_repo: Path, mosquitto: Mosquitto, key: SigningKey
) -> None:
    run(fleet_repo, mosquitto, key)
    new = SigningKey.generate()
    assert run(fleet_repo, mosquitto, new).published == 3
    for payload in retained(mosquitto, DESIRED).values():
        verify(payload, {new.key_id: new.public})


def test_publishing_an_older_revision_is_refused(
    fleet_repo: Path, mosquitto: Mosquitto, key: SigningKey
) -> None:
    minifleet.edit_rollout(fleet_repo, "toledo/line-2", candidate=None)
    minifleet.commit_all(fleet_repo, "change")
    run(fleet_repo, mosquitto, key)
    with pytest.raises(PermanentError, match="newer than 1"):
        run(fleet_repo, mosquitto, key, rev="HEAD~1")


def test_an_invalid_fleet_is_never_published(
    fleet_repo: Path, mosquitto: Mosquitto, key: SigningKey
) -> None:
    minifleet.edit_rollout(fleet_repo, "toledo/line-1", serving="surface-classifier@9")
    minifleet.commit_all(fleet_repo, "typo")
    with pytest.raises(FindingsError, match="surface-classifier@9"):
        run(fleet_repo, mosquitto, key)
    assert retained(mosquitto, DESIRED) == {}


def test_an_unreachable_broker_is_a_temporary_error(
    fleet_repo: Path, key: SigningKey, tmp_path: Path
) -> None:
    nobody = Mosquitto(tmp_path / "none", port=free_port())  # never started
    with pytest.raises(TemporaryError, match="unreachable"):
        run(fleet_repo, nobody, key)


def test_publish_commit_collects_after_the_pass_is_freed(
    fleet_repo: Path, mosquitto: Mosquitto, key: SigningKey
) -> None:
    """The cycle collector's closing collection of `publish_commit` runs once the pass's fleet
    and documents are freed (at 10,000 devices, walking them cost 0.4 s of CPU)."""
    from reconciler.service.incremental import publish_commit
    from reconciler.service.publish import LoadedRevision

    alive: list[list[str]] = []  # at each young-generation collection: revisions still held

    def watch(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 0:
            held = [o for o in gc.get_objects(0) if isinstance(o, LoadedRevision)]
            alive.append([r.commit for r in held])

    gc.callbacks.append(watch)
    try:
        result = publish_commit(
            fleet_repo, "HEAD", BrokerAddress.parse(mosquitto.url), key, "file:///x"
        )
    finally:
        gc.callbacks.remove(watch)
    assert result.published == 3
    assert alive, "no collection ran at the end of the pass"
    assert all(result.commit not in commits for commits in alive)


def test_meanwhile_runs_once_while_the_documents_are_acknowledged(
    fleet_repo: Path, mosquitto: Mosquitto, key: SigningKey
) -> None:
    """The caller's broker-free work (`meanwhile`) runs once per publish: when documents are
    sent, after they are out and before the marker vouches for them; when nothing is sent
    (nothing changed, a dry run), once the broker is read."""
    address = BrokerAddress.parse(mosquitto.url)
    revision = load_revision(fleet_repo, "HEAD")
    base = fleet_repo.resolve().as_uri()
    calls: list[tuple[int, bool]] = []  # (documents retained, marker retained) at each call

    def meanwhile() -> None:
        held: dict[str, bytes] = {}

        def documents() -> int:  # (a message that arrives as we subscribe is not `retained`)
            held.clear()
            held.update(retained(mosquitto, "linefleet/v1/#", quiet=0.1))
            return sum(1 for t in held if t.endswith("/desired"))

        until(lambda: documents() == 3)
        calls.append((documents(), MARKER_TOPIC in held))

    first = publish(revision, address, key, base, quiet=0.2, meanwhile=meanwhile)
    assert first.published == 3
    assert calls == [(3, False)]
    assert MARKER_TOPIC in retained(mosquitto, "linefleet/v1/#")
    again = publish(revision, address, key, base, quiet=0.2, meanwhile=meanwhile)
    assert again.published == 0
    dry = publish(revision, address, key, base, quiet=0.2, dry_run=True, meanwhile=meanwhile)
    assert dry.dry_run
    assert calls == [(3, False), (3, True), (3, True)]


@pytest.mark.skipif(not spare_core(), reason="one core: no worker is forked")
def test_a_worker_out_of_time_still_publishes_every_document_then_the_marker(
    fleet_repo: Path, mosquitto: Mosquitto, key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forked worker signs part of the fleet; one that fails (here: no time left) is
    killed and its part signed in the publishing process: every document, then the marker."""
    monkeypatch.setattr(publish_module, "WORKER_MIN_DEVICES", 0)
    monkeypatch.setattr(publish_module, "WORKER_BATCH", 1)
    monkeypatch.setattr(publish_module, "WORKER_GRACE", -math.inf)
    result = run(fleet_repo, mosquitto, key)
    assert result.published == 3
    held = retained(mosquitto, "linefleet/v1/#")
    assert MARKER_TOPIC in held
    docs = {t: p for t, p in held.items() if t.endswith("/desired")}
    assert len(docs) == 3
    for name, payload in docs.items():
        verify(payload, {key.key_id: key.public}, device=name.split("/")[3])


@pytest.mark.skipif(not spare_core(), reason="one core: no worker is forked")
def test_a_compile_error_in_the_worker_s_part_publishes_nothing(
    fleet_repo: Path, mosquitto: Mosquitto, key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(publish_module, "WORKER_MIN_DEVICES", 0)
    monkeypatch.setattr(publish_module, "WORKER_BATCH", 1)
    revision = load_revision(fleet_repo, "HEAD")
    device = revision.spec.devices[max(revision.spec.devices)]
    serves = [device.serves[0].model_copy(update={"line": "nope"})]
    revision.spec.devices["zz-broken"] = device.model_copy(
        update={"id": "zz-broken", "serves": serves}
    )  # sorts last: the worker's first, or the publisher's last
    address = BrokerAddress.parse(mosquitto.url)
    with pytest.raises(CompileError, match="zz-broken: serves unknown line"):
        publish(revision, address, key, fleet_repo.resolve().as_uri(), quiet=0.2)
    assert retained(mosquitto, "linefleet/v1/#") == {}
