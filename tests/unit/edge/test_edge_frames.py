from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_puller.frames import capture_loop, open_source
from linefleet_core.backoff import Backoff
from linefleet_core.errors import UsageError
from linefleet_core.imagefile import MAX_FILE_BYTES


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
