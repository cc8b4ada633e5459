"""An air-gapped site: bundle export -> import with no broker and no network -> decisions and an
inspector's override -> edge export -> ingested by the trainer and the reconciler's status,
nothing lost, nothing counted twice; a tampered bundle is refused with nothing written.
"""

from __future__ import annotations

import io
import json
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_puller.runner import RunOptions, run
from linefleet.cli import main
from linefleet_core.signing import load_trusted_keys
from tests.support import minifleet
from tests.support.mosquitto import Mosquitto
from tests.support.registry import Registry
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def _rewrite(src: Path, dst: Path, change: Callable[[str, bytes], bytes]) -> None:
    """Copy a tar, passing each member's bytes through `change(name, data)`."""
    with tarfile.open(src) as old, tarfile.open(dst, "w") as new:
        for member in old.getmembers():
            stream = old.extractfile(member)
            assert stream is not None
            data = change(member.name, stream.read())
            info = tarfile.TarInfo(member.name)
            info.size = len(data)
            new.addfile(info, io.BytesIO(data))


def _flip(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, dict[str, str]]:
    """(fleet repo, bundle, spare keys folder, keys) for site toledo, models in a registry that
    is gone once the bundle is written."""
    tmp = tmp_path_factory.mktemp("airgap")
    root = tmp / "fleet"
    minifleet.write_minifleet(root)
    with Registry(tmp / "central") as central:
        minifleet.use_registry_artifacts(root, central.address)
        minifleet.init_repo(root)
        minifleet.commit_all(root, "models in the registry")
        assert main(["keys", "generate", "--out", str(tmp / "keys"), "--format", "json"]) == 0
        out = tmp / "toledo.bundle"
        args = ["bundle", "export", "--site", "toledo", "--repo", str(root), "--out", str(out)]
        assert main(["keys", "generate", "--out", str(tmp / "other")]) == 0  # not pinned
        assert main([*args, "--signing-key", _key(tmp / "keys"), "--format", "json"]) == 0
    return root, out, tmp / "other", {"private": _key(tmp / "keys"), "public": _pub(tmp / "keys")}


def _key(folder: Path) -> str:
    return str(next(folder.glob("*.key")))


def _pub(folder: Path) -> str:
    return str(next(folder.glob("*.pub")))


def _import(bundle: Path, state: Path, key: str) -> int:
    args = ["edge", "import", str(bundle), "--state-dir", str(state)]
    return main([*args, "--device", "toledo/toledo-edge-1", "--trust-key", key])


def test_bundle_import_applies_offline_and_refuses_tampering(
    bundle: tuple[Path, Path, Path, dict[str, str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, path, other, keys = bundle
    with tarfile.open(path) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("bundle.json").read())  # type: ignore[union-attr]
    assert "desired/toledo-edge-1.json" in names and "desired/toledo-edge-2.json" in names
    assert not any("dresden" in n for n in names)
    assert len([n for n in names if n.startswith("artifacts/")]) == 3  # @1, @2, @3

    tampered: dict[str, Callable[[str, bytes], bytes]] = {
        "a model's bytes": lambda n, d: _flip(d) if n.startswith("artifacts/") else d,
        "a desired state": lambda n, d: (
            d.replace(b'"heartbeat_seconds":60', b'"heartbeat_seconds":61')
            if n == "desired/toledo-edge-1.json"
            else d
        ),
        "the manifest": lambda n, d: (
            d.replace(manifest["commit"].encode(), b"0" * 40) if n == "bundle.json" else d
        ),
    }
    for what, change in tampered.items():
        bad = tmp_path / f"bad-{len(what)}.bundle"
        _rewrite(path, bad, change)
        state = tmp_path / f"state-{len(what)}"
        assert _import(bad, state, keys["public"]) == 1, what
        err = capsys.readouterr().err
        assert "linefleet: error:" in err, what
        held = (
            json.loads((state / "state.json").read_text())
            if (state / "state.json").exists()
            else {}
        )
        assert held.get("document") is None, f"{what}: nothing may be accepted"
        assert not list((state / "models").glob("*[0-9a-f]")) or what != "a model's bytes"
    assert _import(path, tmp_path / "unpinned", _pub(other)) == 1
    assert "not pinned" in capsys.readouterr().err

    state = tmp_path / "state"
    assert _import(path, state, keys["public"]) == 0, capsys.readouterr().err
    assert "3 model(s) staged from the bundle" in capsys.readouterr().out
    held = json.loads((state / "state.json").read_text())
    assert held["applied_generation"] == manifest["generation"] == held["document"]["generation"]
    assert _import(path, state, keys["public"]) == 0  # again: the same document, nothing new
    assert "0 model(s) staged" in capsys.readouterr().out


def test_round_trip_run_with_a_bundle_export_ingest_loses_nothing(
    bundle: tuple[Path, Path, Path, dict[str, str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, path, _, keys = bundle
    frames = tmp_path / "frames"
    frames.mkdir()
    results = tmp_path / "results.jsonl"
    state = tmp_path / "state"
    options = RunOptions(
        site="toledo",
        device="toledo-edge-1",
        broker=None,
        bundle=path,
        state_dir=state,
        frames=str(frames),
        trusted_keys=load_trusted_keys([Path(keys["public"])]),
        results=results,
        line="toledo/line-1",
    )
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(options, stop), daemon=True)
    thread.start()
    count = 0

    def decided() -> bool:
        nonlocal count
        count += 1
        cv2.imwrite(str(frames / f"f{count:05d}.png"), np.full((480, 640, 3), 200, np.uint8))
        rows = [json.loads(x) for x in results.read_text().splitlines()] if results.exists() else []
        return bool(rows) and rows[-1].get("model") == "surface-classifier@2"

    try:
        wait_for("a decision by surface-classifier@2 with no broker", decided)
    finally:
        stop.set()
        thread.join(15)
    frame_id = json.loads(results.read_text().splitlines()[-1])["frame_id"]
    override = ["edge", "override", "--state-dir", str(state), "--frame", frame_id]
    assert main([*override, "--label", "oil", "--inspector", "ana"]) == 0
    capsys.readouterr()

    export = tmp_path / "toledo-edge-1.export"
    assert main(["edge", "export", "--state-dir", str(state), "--out", str(export)]) == 0
    assert "message(s)" in capsys.readouterr().out
    ws = ["--state", str(tmp_path / "trainer"), "--fleet-repo", str(root)]
    assert main(["labels", "ingest-events", str(export), *ws]) == 0
    assert "queued 1 override(s) for QA, 1 frame(s) stored" in capsys.readouterr().out
    assert main(["labels", "ingest-events", str(export), *ws]) == 0
    assert "queued 0 override(s)" in capsys.readouterr().out  # the same events: duplicates

    with Mosquitto(tmp_path / "broker") as broker:  # the central broker: knows nothing of it
        status = ["status", "--broker", broker.url, "--repo", str(root), "--format", "json"]
        assert main([*status, "--edge-export", str(export), "--edge-export", str(export)]) == 0
    devices = {d["device"]: d for d in json.loads(capsys.readouterr().out)["devices"]}
    seen = devices["toledo-edge-1"]
    assert seen["condition"] != "Unknown", seen  # its export was read: it reported
    again = ["edge", "export", "--state-dir", str(state)]
    assert main([*again, "--out", str(export), "--ack"]) == 0  # delivered: drop it here
    capsys.readouterr()
    assert main([*again, "--out", str(tmp_path / "after-ack")]) == 0
    assert "0 message(s), 0 spooled frame(s)" in capsys.readouterr().out
