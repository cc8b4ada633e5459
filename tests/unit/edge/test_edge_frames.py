from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_puller.frames import open_source
from linefleet_core.errors import UsageError


def test_directory_yields_images_in_order_and_unreadable_ones_as_none(tmp_path: Path) -> None:
    for name, level in (("b.png", 10), ("a.jpg", 200)):
        cv2.imwrite(str(tmp_path / name), np.full((8, 8, 3), level, dtype=np.uint8))
    (tmp_path / "c.png").write_bytes(b"garbage")
    (tmp_path / "notes.txt").write_text("ignored")
    stop = threading.Event()
    found = []
    for frame_id, frame in open_source(str(tmp_path), stop):
        found.append((frame_id, None if frame is None else int(frame.mean())))
        if len(found) == 3:
            stop.set()
    assert [f[0] for f in found] == ["a.jpg", "b.png", "c.png"]
    assert found[1][1] == 10 and found[2][1] is None


def test_video_file_yields_every_frame(tmp_path: Path) -> None:
    path = tmp_path / "shift.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for level in range(5):
        writer.write(np.full((24, 32, 3), level * 40, dtype=np.uint8))
    writer.release()
    frames = list(open_source(str(path), threading.Event()))
    assert [frame_id for frame_id, _ in frames] == [f"shift-{n:08d}" for n in range(1, 6)]
    assert all(frame is not None and frame.shape == (24, 32, 3) for _, frame in frames)


@pytest.mark.parametrize("source", ["/no/such/place", "README"])
def test_unknown_sources_are_usage_errors(tmp_path: Path, source: str) -> None:
    if source == "README":
        (tmp_path / "README").write_text("not a video")
        source = str(tmp_path / "README")
    with pytest.raises(UsageError, match="--frames"):
        open_source(source, threading.Event())
