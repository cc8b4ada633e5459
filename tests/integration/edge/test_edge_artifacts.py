from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_puller.agent import Agent
from edge_puller.artifacts import ArtifactError, ArtifactStore, DiskFullError
from edge_puller.intake import take_desired
from edge_puller.localstatus import LAST_REPORT
from edge_puller.runner import RunOptions, run
from edge_puller.systemd import Watchdog
from linefleet_core.errors import TemporaryError
from linefleet_core.signing import SigningKey
from tests.integration.edge.artifact_server import Files, serve
from tests.support.waiting import wait_for
from tests.unit.edge.documents import desired, line_doc
from tests.unit.edge.helpers import spec_for

pytestmark = pytest.mark.integration

DATA = os.urandom(700_000)
SHA = hashlib.sha256(DATA).hexdigest()


def test_http_download_resumes_after_the_connection_is_cut(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store", reserve_bytes=0)
    files = Files({"/m.onnx": DATA}, cut_after=300_000)
    with serve(files) as base:
        with pytest.raises(TemporaryError, match="still to come"):
            store.download(f"{base}/m.onnx", SHA, len(DATA))
        assert store.partial_size(SHA) == 300_000
        assert not store.has(SHA)  # a partial download is never a model
        with pytest.raises(TemporaryError):
            store.download(f"{base}/m.onnx", SHA, len(DATA))
        assert store.partial_size(SHA) == 600_000
        store.download(f"{base}/m.onnx", SHA, len(DATA))
    assert files.requests[1:] == [("/m.onnx", "bytes=300000-"), ("/m.onnx", "bytes=600000-")]
    store.verify(SHA, len(DATA), resumed=True)
    assert store.path(SHA).read_bytes() == DATA
    assert not store.part_path(SHA).exists()


def test_server_that_ignores_range_restarts_the_part(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, reserve_bytes=0)
    store.part_path(SHA).write_bytes(b"x" * 1000)
    with serve(Files({"/m": DATA}, ignore_range=True)) as base:
        store.download(f"{base}/m", SHA, len(DATA))
    store.verify(SHA, len(DATA), resumed=True)
    assert store.has(SHA)


def test_wrong_hash_is_permanent_and_leaves_nothing(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, reserve_bytes=0)
    other = "f" * 64
    with serve(Files({"/m": DATA})) as base:
        store.download(f"{base}/m", other, len(DATA))
    with pytest.raises(ArtifactError, match=r"expected f+") as err:
        store.verify(other, len(DATA), resumed=False)
    assert err.value.reason == "hash-mismatch"
    assert list(tmp_path.iterdir()) == []


def test_wrong_size_is_refused_before_downloading(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, reserve_bytes=0)
    with serve(Files({"/m": DATA})) as base, pytest.raises(ArtifactError) as err:
        store.download(f"{base}/m", SHA, len(DATA) + 1)
    assert err.value.reason == "size-mismatch"
    assert store.partial_size(SHA) == 0


def test_missing_url_is_permanent(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, reserve_bytes=0)
    with serve(Files()) as base, pytest.raises(ArtifactError) as err:
        store.download(f"{base}/nothing", SHA, 10)
    assert err.value.reason == "not-found"


def test_file_url_download_resumes_from_the_part(tmp_path: Path) -> None:
    source = tmp_path / "src.onnx"
    source.write_bytes(DATA)
    store = ArtifactStore(tmp_path / "store", reserve_bytes=0, file_roots=[tmp_path])
    store.part_path(SHA).write_bytes(DATA[:1234])
    store.download(source.as_uri(), SHA, len(DATA))
    store.verify(SHA, len(DATA), resumed=True)
    assert store.path(SHA).read_bytes() == DATA


def test_not_enough_free_disk_is_checked_first(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, reserve_bytes=2**62, file_roots=[tmp_path])
    with pytest.raises(DiskFullError, match="not enough disk"):
        store.download((tmp_path / "x").as_uri(), SHA, 10)
    assert store.partial_size(SHA) == 0


@pytest.mark.parametrize("name", ["../../etc/passwd", "A" * 64, "abc", "0" * 63 + "/"])
def test_names_that_are_not_sha256_never_become_paths(tmp_path: Path, name: str) -> None:
    store = ArtifactStore(tmp_path)
    with pytest.raises(ArtifactError, match="is not a sha256"):
        store.path(name)


def test_unsupported_scheme_is_refused(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, reserve_bytes=0)
    with pytest.raises(ArtifactError, match="only oci://, file://"):
        store.download("ftp://example/m", SHA, 10)


def test_prune_keeps_only_what_is_asked(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    keep, drop = "a" * 64, "b" * 64
    store.path(keep).write_bytes(b"1")
    store.path(drop).write_bytes(b"2")
    store.part_path(drop).write_bytes(b"3")
    assert store.prune([keep]) == [drop]
    assert store.present() == frozenset({keep})


def test_agent_converges_through_a_flaky_http_server(tmp_path: Path) -> None:
    from edge_puller.agent import Agent
    from linefleet_core.signing import SigningKey
    from tests.support.onnx_models import CLASSES, build
    from tests.support.wiremodels import model_spec
    from tests.unit.edge.documents import desired, line_doc

    data = build(pad_bytes=400_000)
    files = Files({"/m.onnx": data}, cut_after=150_000)
    key = SigningKey.generate()
    agent = Agent("plant", "dev-1", tmp_path / "state", {key.key_id: key.public})
    with serve(files) as base:
        spec = model_spec(
            "m@1",
            hashlib.sha256(data).hexdigest(),
            len(data),
            f"{base}/m.onnx",
            CLASSES,
            (1, 3, 32, 32),
        )
        agent.offer_desired(desired(key, 1, line_doc(spec)))
        for _ in range(10):
            agent.tick()
            if agent.state.applied_generation == 1:
                break
    assert agent.state.applied_generation == 1
    ranges = [r for _, r in files.requests]
    assert ranges[:3] == [None, "bytes=150000-", "bytes=300000-"]
    assert agent.engine.lines()["plant/line-1"].serving.spec.ref == "m@1"


def test_file_urls_outside_the_artifact_roots_are_refused(tmp_path: Path) -> None:
    inside = tmp_path / "artifacts" / "m.onnx"
    inside.parent.mkdir()
    inside.write_bytes(DATA)
    outside = tmp_path / "elsewhere.onnx"
    outside.write_bytes(DATA)
    link = tmp_path / "artifacts" / "sneaky.onnx"
    link.symlink_to(outside)
    store = ArtifactStore(tmp_path / "store", reserve_bytes=0, file_roots=[inside.parent])
    for url in (outside.as_uri(), link.as_uri(), f"file://{inside.parent}/../elsewhere.onnx"):
        with pytest.raises(ArtifactError) as refused:
            store.download(url, SHA, len(DATA))
        assert refused.value.reason == "outside-artifact-roots"
    store.download(inside.as_uri(), SHA, len(DATA))
    assert store.partial_size(SHA) == len(DATA)


def test_a_slow_download_keeps_the_agent_alive_and_gives_way_to_a_newer_document(
    tmp_path: Path,
) -> None:
    """A model was fetched within one convergence tick, so for a slow download's whole length
    the loop did not say it was alive (systemd's watchdog, WatchdogSec=30 in the unit `edge
    install-service` writes, then restarts the agent), and a newer desired state waited for
    it, and no report went out (status: Stale): a server that trickles bytes held the device
    on that download for good. The retained copy the broker sends again on every re-subscribe
    must not restart it (from scratch where the server ignores `Range`)."""
    slow = spec_for(tmp_path / "src", "slow", 1, pad_bytes=64 * 1024)
    fast = spec_for(tmp_path / "src", "fast", 2)
    source = Path(slow.artifact.url.removeprefix("file://"))
    files = Files({"/slow.onnx": source.read_bytes()}, trickle=(64, 0.05))  # ~50 s
    key = SigningKey.generate()
    agent = Agent("plant", "dev-1", tmp_path / "state", {key.key_id: key.public},
                  file_roots=[tmp_path / "src"])  # fmt: skip
    watchdog = Watchdog(0.5, send=lambda _: None)
    stop = threading.Event()
    loop = threading.Thread(
        target=agent.run, args=(stop, lambda: watchdog.alive("converge")), daemon=True
    )
    with serve(files) as base:
        artifact = slow.artifact.model_copy(update={"url": f"{base}/slow.onnx"})
        served = line_doc(slow.model_copy(update={"artifact": artifact}))
        agent.offer_desired(desired(key, 1, served, heartbeat_seconds=1))
        watchdog.alive("converge")
        loop.start()
        try:
            last_report = tmp_path / "state" / LAST_REPORT
            wait_for("a report while downloading", last_report.exists, 5)
            stalled: set[str] = set()
            reports: set[str] = set()
            for _ in range(30):  # 1.5 s, three watchdog periods, into the download
                stalled.update(watchdog.stalled())
                reports.add(json.loads(last_report.read_bytes())["at"])
                time.sleep(0.05)
            assert stalled == set()
            assert len(reports) >= 2  # the heartbeat (1 s) went on
            assert not agent.state.applied_generation  # still downloading
            asked = len(files.requests)
            agent.offer_desired(desired(key, 1, served, heartbeat_seconds=1))  # a re-subscribe
            time.sleep(0.3)
            assert len(files.requests) == asked  # a duplicate does not restart the download
            agent.offer_desired(desired(key, 2, line_doc(fast)))
            wait_for("generation 2", lambda: agent.state.applied_generation == 2, 5)
            assert agent.error == ""
        finally:
            files.stop.set()
            stop.set()
            agent.wake.set()
            loop.join(10)
    assert not loop.is_alive()
    assert not agent.store.has(slow.artifact.sha256)  # never completed, so never loaded


def test_an_agent_restarted_mid_download_inspects_with_what_it_runs_meanwhile(
    tmp_path: Path,
) -> None:
    """`edge run` converged once before its loop, link and cameras started, and that tick
    downloaded: an agent restarted (power loss, watchdog) while a new model was still to come
    decided no frame, connected to no broker and told systemd nothing (`READY=1`; a unit's
    start times out after 90 s) until the whole remaining download was in."""
    slow = spec_for(tmp_path / "src", "slow", 2, pad_bytes=64 * 1024)
    running = spec_for(tmp_path / "src", "running", 1)
    source = Path(slow.artifact.url.removeprefix("file://"))
    files = Files({"/slow.onnx": source.read_bytes()}, trickle=(64, 0.05))  # ~50 s
    key = SigningKey.generate()
    state = tmp_path / "state"
    frames = tmp_path / "frames"
    frames.mkdir()
    with serve(files) as base:
        before = Agent("plant", "dev-1", state, {key.key_id: key.public},
                       file_roots=[tmp_path / "src"])  # fmt: skip
        before.offer_desired(desired(key, 1, line_doc(running)))
        for _ in range(5):
            before.tick()
        assert before.state.applied_generation == 1
        artifact = slow.artifact.model_copy(update={"url": f"{base}/slow.onnx"})
        before.offer_desired(
            desired(key, 2, line_doc(slow.model_copy(update={"artifact": artifact})))
        )
        take_desired(before)  # accepted and persisted; the power went before the download
        before.outbox.close()
        for n in range(3):
            cv2.imwrite(str(frames / f"f{n}.png"), np.full((48, 64, 3), 200, np.uint8))
        results = tmp_path / "results.jsonl"
        options = RunOptions(
            site="plant",
            device="dev-1",
            broker=None,
            state_dir=state,
            frames=str(frames),
            trusted_keys={key.key_id: key.public},
            results=results,
            artifact_roots=(tmp_path / "src",),
        )
        stop = threading.Event()
        agent = threading.Thread(target=run, args=(options, stop), daemon=True)
        agent.start()
        try:

            def decided() -> list[str]:
                text = results.read_text() if results.exists() else ""
                return [json.loads(line).get("model") for line in text.splitlines()]

            # (the download takes ~50 s: without the fix no frame is decided before it ends)
            wait_for("three frames decided", lambda: len(decided()) >= 3, 30)
            assert decided()[:3] == ["running@1"] * 3
            wait_for("the download running meanwhile", lambda: bool(files.requests), 30)
        finally:
            files.stop.set()
            stop.set()
            agent.join(15)
    assert not agent.is_alive()
