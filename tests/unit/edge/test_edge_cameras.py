"""Every camera at once: bounded per-camera queues, oldest-dropped backpressure, round-robin
workers, and a stopped camera retried while the others go on (`edge_puller/cameras.py`)."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from edge_puller.cameras import CameraFeed, CameraHub, FrameItem, read_camera
from edge_puller.frames import open_camera
from edge_puller.sources import Source, check_cameras, lines_of
from tests.support.waiting import wait_for

FRAME = np.zeros((4, 4, 3), dtype=np.uint8)


def _feed(camera: str, kind: str = "live", capacity: int = 3) -> CameraFeed:
    return CameraFeed(Source(camera, "x", kind), capacity)  # type: ignore[arg-type]


def test_a_live_camera_that_outruns_inference_drops_its_oldest_frames_and_counts_them() -> None:
    feed = _feed("cam-a", capacity=3)
    hub = CameraHub({"cam-a": feed})
    stop = threading.Event()
    for n in range(10):
        hub.put(feed, (f"f{n}", FRAME), stop)
    assert [frame_id for frame_id, _ in feed.queue] == ["f7", "f8", "f9"]  # the newest kept
    assert (feed.read, feed.dropped, len(feed.queue)) == (10, 7, 3)
    assert hub.status()["cam-a"]["frames_dropped"] == 7


def test_a_recorded_source_waits_for_room_and_loses_nothing() -> None:
    feed = _feed("cam-a", kind="folder", capacity=2)
    hub = CameraHub({"cam-a": feed})
    stop = threading.Event()
    items = iter([(f"f{n}", FRAME) for n in range(6)])

    def opener(*_: object) -> Iterator[FrameItem]:
        return items

    reader = threading.Thread(target=read_camera, args=(hub, feed, opener, stop))
    reader.start()
    time.sleep(0.1)
    assert len(feed.queue) == 2  # blocked: the queue is bounded, nothing dropped
    taken = []
    while not hub.exhausted:
        got = hub.take(stop, timeout=0.05)
        if got is not None:
            taken.append(got[1][0])
            hub.done(got[0], True)
    reader.join(5)
    assert taken == [f"f{n}" for n in range(6)]
    assert (feed.dropped, feed.decided, feed.state) == (0, 6, "ended")


def test_workers_take_frames_round_robin_so_one_busy_camera_cannot_starve_another() -> None:
    busy, quiet = _feed("busy", capacity=50), _feed("quiet", capacity=50)
    hub = CameraHub({"busy": busy, "quiet": quiet})
    stop = threading.Event()
    for n in range(20):
        hub.put(busy, (f"b{n}", FRAME), stop)
    hub.put(quiet, ("q0", FRAME), stop)
    first = [hub.take(stop) for _ in range(3)]
    assert [got[1][0] for got in first if got] == ["b0", "q0", "b1"]


def test_a_camera_whose_folder_goes_away_is_reported_and_read_again_while_others_go_on(
    tmp_path: Path,
) -> None:
    gone, fine = tmp_path / "gone", tmp_path / "fine"
    for folder in (gone, fine):
        folder.mkdir()
        cv2.imwrite(str(folder / "a.png"), FRAME)
    feeds = {
        "gone": CameraFeed(Source("gone", str(gone), "folder"), 4),
        "fine": CameraFeed(Source("fine", str(fine), "folder"), 4),
    }
    hub = CameraHub(feeds)
    stop = threading.Event()

    def opener(source: Source, halt: threading.Event, trouble: object) -> Iterator[FrameItem]:
        return open_camera(source.kind, source.location, source.camera, halt, trouble)  # type: ignore[arg-type]

    readers = [
        threading.Thread(target=read_camera, args=(hub, feed, opener, stop), daemon=True)
        for feed in feeds.values()
    ]
    for reader in readers:
        reader.start()
    try:
        wait_for("a frame from each camera", lambda: feeds["gone"].read == feeds["fine"].read == 1)
        shutil.rmtree(gone)
        wait_for("the vanished camera retrying", lambda: feeds["gone"].state == "retrying")
        assert "gone" in feeds["gone"].message and "retrying" in feeds["gone"].message
        assert hub.problems() == [feeds["gone"].message]
        cv2.imwrite(str(fine / "b.png"), FRAME)  # the other camera goes on meanwhile
        wait_for("the other camera's next frame", lambda: feeds["fine"].read == 2)
        gone.mkdir()
        cv2.imwrite(str(gone / "c.png"), FRAME)
        wait_for("the camera back with a frame", lambda: feeds["gone"].read == 2)
        assert feeds["gone"].state == "streaming" and hub.problems() == []
        assert feeds["gone"].retries == 1
    finally:
        stop.set()
        for reader in readers:
            reader.join(5)
    names = [frame_id for frame_id, _ in feeds["gone"].queue]
    assert names == ["gone/a.png", "gone/c.png"]  # frame ids name the camera


def test_camera_ids_are_checked_against_the_lines_the_device_serves() -> None:
    lines = {"p/paint-1": ("a", "b"), "p/paint-2": ("b", "c")}
    check = check_cameras({"a": 1, "b": 1, "z": 1}, lines)
    assert (check.unknown, check.without_source) == (("z",), ("c",))
    assert check.problems() == [
        "sources: camera z is not a camera of any line this device serves; its frames are not "
        "decided",
        "sources: no source for camera c",
    ]
    assert lines_of("b", lines) == ["p/paint-1", "p/paint-2"]  # one camera, two lines
