from __future__ import annotations

import functools
import http.server
import os
import socket
import struct
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_puller.cameras import CameraFeed, CameraHub, read_camera
from edge_puller.frames import (
    Frames,
    ProblemSink,
    capture_loop,
    open_camera,
    open_source,
    shown,
)
from edge_puller.sources import Source
from linefleet_core.backoff import Backoff
from linefleet_core.errors import UsageError
from linefleet_core.imagefile import MAX_FILE_BYTES, MAX_PIXELS


def write_video(path: Path, levels: list[int]) -> Path:
    """A real MJPG .avi (OpenCV writes it without a display or codec packs)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (32, 24))
    for level in levels:
        writer.write(np.full((24, 32, 3), level, dtype=np.uint8))
    writer.release()
    return path


def test_directory_yields_images_in_order_and_unreadable_ones_as_none(tmp_path: Path) -> None:
    for name, level in (("b.png", 10), ("a.jpg", 200)):
        cv2.imwrite(str(tmp_path / name), np.full((8, 8, 3), level, dtype=np.uint8))
    (tmp_path / "c.png").write_bytes(b"garbage")
    os.utime(tmp_path / "c.png", (time.time() - 60, time.time() - 60))  # settled: unreadable
    (tmp_path / "notes.txt").write_text("ignored")
    stop = threading.Event()
    found = []
    for frame_id, frame in open_source(str(tmp_path), stop):
        found.append((frame_id, None if frame is None else int(frame.mean())))
        if len(found) == 3:
            stop.set()
    assert [f[0] for f in found] == ["a.jpg", "b.png", "c.png"]
    assert found[1][1] == 10 and found[2][1] is None


def test_a_named_pipe_or_folder_called_like_a_frame_is_unreadable_not_a_hang(
    tmp_path: Path,
) -> None:
    os.mkfifo(tmp_path / "a.png")  # nobody writes to it: reading it would block for ever
    (tmp_path / "b.png").mkdir()
    cv2.imwrite(str(tmp_path / "c.png"), np.full((8, 8, 3), 40, dtype=np.uint8))
    old = time.time() - 60
    for name in ("a.png", "b.png"):
        os.utime(tmp_path / name, (old, old))  # settled: not a frame still being written
    stop = threading.Event()
    found: list[tuple[str, int | None]] = []

    def read() -> None:
        for frame_id, frame in open_source(str(tmp_path), stop):
            found.append((frame_id, None if frame is None else int(frame.mean())))
            if len(found) == 3:
                stop.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    stop.set()
    assert found == [("a.png", None), ("b.png", None), ("c.png", 40)]


def test_a_frame_still_being_written_is_read_once_complete_not_counted_unreadable(
    tmp_path: Path,
) -> None:
    _, buf = cv2.imencode(".png", np.full((24, 64), 77, dtype=np.uint8))
    data = buf.tobytes()
    (tmp_path / "a.png").write_bytes(data[: len(data) // 2])  # the camera is still writing
    stop = threading.Event()
    frames = open_source(str(tmp_path), stop)
    found: list[tuple[str, int | None]] = []

    def finish() -> None:
        time.sleep(0.3)
        (tmp_path / "a.png").write_bytes(data)

    writer = threading.Thread(target=finish)
    writer.start()
    for frame_id, frame in frames:
        found.append((frame_id, None if frame is None else int(frame.mean())))
        stop.set()
    writer.join()
    assert found == [("a.png", 77)]


def test_video_file_yields_every_frame(tmp_path: Path) -> None:
    path = write_video(tmp_path / "shift.avi", [level * 40 for level in range(5)])
    problems: list[str] = []
    frames = list(open_source(str(path), threading.Event(), problems.append))
    assert [frame_id for frame_id, _ in frames] == [f"shift-{n:08d}" for n in range(1, 6)]
    assert all(frame is not None and frame.shape == (24, 32, 3) for _, frame in frames)
    levels = [int(frame.mean()) for _, frame in frames if frame is not None]
    assert all(abs(got - want * 40) <= 3 for want, got in enumerate(levels))  # MJPG is lossy
    assert problems == []  # the end of a video is not a problem: the stream is over


def test_a_video_file_opencv_cannot_read_is_a_usage_error_at_once(tmp_path: Path) -> None:
    (tmp_path / "broken.avi").write_bytes(b"RIFF" + b"\x00" * 400)
    with pytest.raises(UsageError, match="OpenCV cannot read this video file"):
        open_source(str(tmp_path / "broken.avi"), threading.Event())


def test_a_digit_source_is_a_camera_that_keeps_retrying_while_it_cannot_be_opened() -> None:
    # No camera has index 63 here (the CI machine has none at all): like a USB camera that is
    # unplugged when the agent starts. The source must not raise: it says why and retries.
    if Path("/dev/video63").exists():
        pytest.skip("this machine has a camera at index 63")
    stop = threading.Event()
    problems: list[str] = []

    def on_problem(message: str) -> None:
        problems.append(message)
        stop.set()  # one report is enough: the loop would otherwise retry until stopped

    assert list(open_source("63", stop, on_problem)) == []
    assert problems == ["frames camera63: OpenCV cannot open 63; retrying"]


def test_the_camera_loop_reopens_a_capture_that_stops_and_resumes_numbering(
    tmp_path: Path,
) -> None:
    # The camera's own loop over a real cv2.VideoCapture; a video file stands in for the
    # device: the end of its stream is the camera going silent, the file missing is it being
    # unplugged, the file back is it plugged in again.
    video = write_video(tmp_path / "cam.avi", [40, 80, 120])
    away = tmp_path / "unplugged.avi"
    stop = threading.Event()
    problems: list[str] = []

    def on_problem(message: str) -> None:
        problems.append(message)
        if "stopped delivering" in message:
            video.rename(away)  # unplug
        elif "cannot open" in message:
            away.rename(video)  # plug it back in

    frames = []
    loop = capture_loop(
        str(video), "cam", stop, on_problem, reopen=True, backoff=Backoff(0.01, 0.02)
    )
    for frame_id, frame in loop:
        assert frame is not None
        frames.append((frame_id, int(frame.mean())))
        if len(frames) == 5:
            stop.set()
    assert [f[0] for f in frames] == [f"cam-{n:08d}" for n in range(1, 6)]
    assert [round(f[1], -1) for f in frames] == [40, 80, 120, 40, 80]
    assert problems == [
        f"frames cam: {str(video)!r} stopped delivering frames; reopening",
        f"frames cam: OpenCV cannot open {str(video)!r}; retrying",
        "",  # frames flow again
    ]


@pytest.mark.parametrize("source", ["/no/such/place", "README"])
def test_unknown_sources_are_usage_errors(tmp_path: Path, source: str) -> None:
    if source == "README":
        (tmp_path / "README").write_text("not a video")
        source = str(tmp_path / "README")
    with pytest.raises(UsageError, match="--frames"):
        open_source(source, threading.Event())


def test_an_image_file_over_the_size_limit_is_not_read_and_is_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A valid PNG padded past MAX_FILE_BYTES (sparse: no disk used) was read whole, then
    decoded; it is refused by its size before a byte is read."""
    cv2.imwrite(str(tmp_path / "a.png"), np.full((8, 8, 3), 40, dtype=np.uint8))
    os.truncate(tmp_path / "a.png", MAX_FILE_BYTES + 1)
    cv2.imwrite(str(tmp_path / "b.png"), np.full((8, 8, 3), 90, dtype=np.uint8))
    old = time.time() - 60
    os.utime(tmp_path / "a.png", (old, old))  # settled: not a frame still being written
    stop = threading.Event()
    found: list[tuple[str, int | None]] = []
    for frame_id, frame in open_source(str(tmp_path), stop):
        found.append((frame_id, None if frame is None else int(frame.mean())))
        if len(found) == 2:
            stop.set()
    assert found == [("a.png", None), ("b.png", 90)]
    assert (
        f"frames folder: {tmp_path / 'a.png'}: {MAX_FILE_BYTES + 1:,} bytes; an image file is "
        f"read only up to {MAX_FILE_BYTES:,} bytes" in caplog.text
    )


def test_an_oversized_file_still_being_written_is_named_once_when_it_settles(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file over the size limit that was still being written was logged at every poll of the
    folder (five a second); it is looked at again quietly, and named once it has settled."""
    (tmp_path / "a.png").touch()
    os.truncate(tmp_path / "a.png", MAX_FILE_BYTES + 1)
    soon = time.time() + 60
    os.utime(tmp_path / "a.png", (soon, soon))  # still being written, however slow this run
    stop = threading.Event()
    found: list[tuple[str, bool]] = []

    def read() -> None:
        for frame_id, frame in open_source(str(tmp_path), stop):
            found.append((frame_id, frame is None))
            stop.set()

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(1.0)  # five polls while it is still "being written"
    assert found == [] and "a.png" not in caplog.text
    old = time.time() - 60
    os.utime(tmp_path / "a.png", (old, old))  # settled
    reader.join(timeout=10)
    assert found == [("a.png", True)]
    assert caplog.text.count("an image file is read only up to") == 1


def video_declaring(path: Path, width: int, height: int) -> Path:
    """A real 3-frame MJPG .avi of a few KB whose frames and headers declare `width` x
    `height`: what a misconfigured or hostile camera stream says before its first frame."""
    data = bytearray(write_video(path, [40, 80, 120]).read_bytes())
    at = data.find(b"\xff\xc0")  # each JPEG's start of frame: height, then width
    while at >= 0:
        struct.pack_into(">HH", data, at + 5, height, width)
        at = data.find(b"\xff\xc0", at + 2)
    struct.pack_into("<ii", data, data.find(b"strf") + 12, width, height)  # BITMAPINFOHEADER
    struct.pack_into("<II", data, data.find(b"avih") + 40, width, height)  # main AVI header
    path.write_bytes(bytes(data))
    return path


HUGE = (16384, 8193)  # 134,234,112 pixels: just above MAX_PIXELS, 400 MB a decoded frame
REFUSED = f"declares 16,384 x 8,193 pixels, above the limit of {MAX_PIXELS:,} a frame"


def test_a_video_declaring_more_pixels_than_an_image_may_have_is_refused_at_once(
    tmp_path: Path,
) -> None:
    video = video_declaring(tmp_path / "huge.avi", *HUGE)
    assert cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FRAME_WIDTH) == HUGE[0]  # as declared
    with pytest.raises(UsageError, match=f"--frames {video}: {REFUSED}"):
        open_source(str(video), threading.Event())


def test_a_sources_video_declaring_too_many_pixels_fails_its_camera_with_the_reason(
    tmp_path: Path,
) -> None:
    """No frame is read (each would decode to 400 MB, times the camera's queue); the camera
    is `failed` with the reason, which the report's `error` carries (`hub.problems`)."""
    video = video_declaring(tmp_path / "huge.avi", *HUGE)
    feed = CameraFeed(Source("cam-1", str(video), "video"), 4)
    hub = CameraHub({"cam-1": feed})

    def opener(source: Source, halt: threading.Event, trouble: ProblemSink) -> Frames:
        return open_camera(source.kind, source.location, source.camera, halt, trouble)

    read_camera(hub, feed, opener, threading.Event())
    assert (feed.state, feed.read) == ("failed", 0)
    assert hub.problems() == [
        f"frames cam-1: {str(video)!r} {REFUSED} (as for still images); refused"
    ]


def first_problem(url: str) -> list[str]:
    """What a live capture of `url` (camera `cam-1`) reports first; the loop then stops."""
    stop = threading.Event()
    problems: list[str] = []

    def on_problem(message: str) -> None:
        problems.append(message)
        stop.set()

    assert list(capture_loop(url, "cam-1", stop, on_problem, reopen=True)) == []
    return problems


def test_a_stream_declaring_too_many_pixels_is_refused_and_retried(tmp_path: Path) -> None:
    """A stream (served over HTTP here, as a camera's MJPEG stream is) may be reconfigured:
    it is refused, said, and opened again with backoff, never read."""
    video_declaring(tmp_path / "huge.avi", *HUGE)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/huge.avi"
    try:
        problems = first_problem(url)
    finally:
        server.shutdown()
        server.server_close()
    assert problems == [f"frames cam-1: {url!r} {REFUSED} (as for still images); refused; retrying"]


def test_a_decoded_frame_larger_than_the_limit_ends_a_video_said_not_queued(
    tmp_path: Path,
) -> None:
    """The declared size is checked once per opening; a frame decoded larger (a capture
    changing resolution, or declaring none) is refused too. OpenCV's image-sequence capture
    declares its first image's size and delivers each at its own."""
    cv2.imwrite(str(tmp_path / "f001.png"), np.full((24, 32, 3), 50, np.uint8))
    cv2.imwrite(str(tmp_path / "f002.png"), np.full((48, 64, 3), 50, np.uint8))
    pattern = str(tmp_path / "f%03d.png")
    capture = cv2.VideoCapture(pattern, cv2.CAP_IMAGES)
    problems: list[str] = []
    frames = list(
        capture_loop(
            pattern, "cam", threading.Event(), problems.append, reopen=False, opened=capture,
            max_pixels=32 * 24,
        )
    )  # fmt: skip
    assert [(frame_id, f.shape if f is not None else None) for frame_id, f in frames] == [
        ("cam-00000001", (24, 32, 3))
    ]
    assert problems == [
        f"frames cam: {pattern!r} delivered a frame of 64 x 48 pixels, above the limit of 768 "
        "a frame (as for still images); refused"
    ]


def test_a_stream_password_never_reaches_the_report(tmp_path: Path) -> None:
    """IP cameras often want `rtsp://user:password@host/...`: the sources file keeps it on the
    device, but a problem's text goes into the report (over MQTT, into `linefleet status`), so
    the password is written `***` there; the user and host stay, to find the camera by."""
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://viewer:s3cr%40t@127.0.0.1:{port}/cam.mjpg"
    problems = first_problem(url)
    shown_url = f"'http://viewer:***@127.0.0.1:{port}/cam.mjpg'"
    assert problems == [f"frames cam-1: OpenCV cannot open {shown_url}; retrying"]
    assert shown("rtsp://cam.local/1") == "'rtsp://cam.local/1'"
    assert shown("rtsp://viewer@cam.local/1") == "'rtsp://viewer@cam.local/1'"
    assert shown("rtsp://viewer:pw@[fe80::1]:554/1") == "'rtsp://viewer:***@[fe80::1]:554/1'"
    assert shown(0) == "0"
