"""Frame sources: a directory of images (watched for new files), a video file, or a camera.

Each yields `(frame_id, frame)` with `frame` an 8-bit BGR image as OpenCV decodes it. An
unreadable file is yielded as `(frame_id, None)` so the caller can count and report it; it
never stops inspection. A directory source keeps watching for new files until stopped; a video
or camera source ends when the stream does.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from edge_puller.runtime import Frame
from linefleet_core.errors import UsageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm"}
POLL_SECONDS = 0.2


def open_source(source: str, stop: threading.Event) -> Iterator[tuple[str, Frame | None]]:
    """The frames of SOURCE: a directory, a video file or a camera index."""
    if source.isdigit():
        return _capture(int(source), f"camera{source}", stop)
    path = Path(source)
    if path.is_dir():
        return _directory(path, stop)
    if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
        return _capture(str(path), path.stem, stop)
    if path.is_file():
        raise UsageError(
            f"--frames {source}: not a video file ({', '.join(sorted(VIDEO_SUFFIXES))})"
        )
    raise UsageError(f"--frames {source}: no such directory, video file or camera index")


def _read_image(path: Path) -> Frame | None:
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    return None if image is None else np.asarray(image, dtype=np.uint8)


def _directory(folder: Path, stop: threading.Event) -> Iterator[tuple[str, Frame | None]]:
    seen: set[str] = set()
    while not stop.is_set():
        fresh = sorted(
            p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.name not in seen
        )
        for path in fresh:
            if stop.is_set():
                return
            seen.add(path.name)
            yield path.name, _read_image(path)
        if not fresh:
            stop.wait(POLL_SECONDS)


def _capture(
    device: int | str, name: str, stop: threading.Event
) -> Iterator[tuple[str, Frame | None]]:
    capture = cv2.VideoCapture(device)
    if not capture.isOpened():
        raise UsageError(f"--frames {device}: OpenCV cannot open it")
    index = 0
    try:
        while not stop.is_set():
            ok, frame = capture.read()
            if not ok:
                return
            index += 1
            yield f"{name}-{index:08d}", np.asarray(frame, dtype=np.uint8)
    finally:
        capture.release()
